"""Binding a spec's symbolic sizes (``data x : real[D]``) from a data set: the one place where
the checked declarations meet the data, for :func:`gendsl.lower.load` and the run commands."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from gendsl.errors import UsageError
from gendsl.families.matching import transport_source
from gendsl.ir import CheckedModel

if TYPE_CHECKING:
    from gendsl.data import Dataset

__all__ = ["bind_sizes", "declaration"]


def declaration(checked: CheckedModel, name: str) -> dict[str, Any]:
    """The declaration of the variable ``name`` as :func:`gendsl.data.check_against` reads it
    (a ``label[K]`` declares the shape ``[K]``: the number of classes)."""
    var = checked.variables.get(name) or next(v for v in checked.observed_vars() if v.name == name)
    shape = [var.type.classes] if var.type.kind == "label" else list(var.type.shape)
    return {"name": name, "type": var.type.kind, "shape": shape, "span": var.span}


def bind_sizes(
    checked: CheckedModel,
    data: Dataset | str | None,
    bindings: Mapping[str, int] | None = None,
) -> dict[str, int]:
    """``bindings`` plus the sizes that ``data`` binds, checked with
    :func:`gendsl.data.check_against`.

    ``data`` is a :class:`~gendsl.data.Dataset`, a name or path for
    :func:`gendsl.data.load_dataset`, or ``None`` (nothing to bind).  Its samples bind the
    model's one data variable, its labels every ``label`` condition, its conditions ``c`` (an
    ``.npz``'s) every ``real`` condition.
    """
    from gendsl.data import (  # loaded only to bind sizes
        Dataset,
        check_against,
        check_conditions,
        load_dataset,
    )

    bound = dict(bindings or {})
    if data is None:
        return bound
    dataset = data if isinstance(data, Dataset) else load_dataset(data)
    source = transport_source(checked)  # bound from the source data set (gendsl.runs)
    data_vars = [v for v in checked.observed_vars() if v.name != source]
    if len(data_vars) != 1:
        raise UsageError(
            f"model {checked.name} declares {len(data_vars)} data variables; training from one "
            "data set needs exactly one"
        )
    bound = check_against(dataset, declaration(checked, data_vars[0].name), bindings=bound)
    for cond in checked.condition_vars():
        if cond.type.kind == "real":
            bound = check_conditions(dataset, declaration(checked, cond.name), bindings=bound)
            continue
        if cond.type.kind != "label":
            continue
        if dataset.y is None:
            raise UsageError(
                f"model {checked.name} is conditioned on the label {cond.name}, but "
                f"{dataset.name} has no labels"
            )
        bound = check_against(dataset, declaration(checked, cond.name), bindings=bound)
    return bound
