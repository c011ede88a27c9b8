"""Lowering: from a checked model to a trainable :class:`~gendsl.lower.base.Model`.

:func:`compile_model` picks the family's back end from :data:`~gendsl.lower.registry.BACKENDS`,
importing ``gendsl.lower.<family>`` on first use; :func:`load` parses, checks, binds sizes and
compiles in one call.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from gendsl.errors import UsageError
from gendsl.ir import CheckedModel
from gendsl.lower.base import Model
from gendsl.lower.registry import BACKENDS, register

__all__ = ["BACKENDS", "Model", "bind_sizes", "compile_model", "load", "register"]


def _backend(family: str):
    if family not in BACKENDS:
        try:
            importlib.import_module(f"gendsl.lower.{family}")
        except ModuleNotFoundError as err:
            if err.name != f"gendsl.lower.{family}":
                raise
    if family not in BACKENDS:
        raise UsageError(f"the {family} family has no back end yet")
    return BACKENDS[family]


def compile_model(checked: CheckedModel, *, bindings: Mapping[str, int] | None = None) -> Model:
    """The compiled model of ``checked``, with symbolic sizes bound by ``bindings``."""
    return _backend(checked.family)(checked, dict(bindings or {}))


def bind_sizes(checked: CheckedModel, data: Any, bindings: Mapping[str, int]) -> dict[str, int]:
    """Bind the symbolic sizes of ``checked``'s data and condition declarations from ``data``
    (a :class:`gendsl.data.Dataset` or a name/path for :func:`gendsl.data.load_dataset`) with
    :func:`gendsl.data.check_against`, on top of ``bindings``."""
    from gendsl.data import Dataset, check_against, load_dataset

    dataset = data if isinstance(data, Dataset) else load_dataset(data)
    bound = {**checked.sizes, **bindings}
    for var in checked.data_vars() + checked.condition_vars():
        if var.role == "condition" and var.type.kind != "label":
            continue
        decl = {
            "name": var.name,
            "type": var.type.kind,
            "shape": [var.type.classes] if var.type.kind == "label" else list(var.type.shape),
            "span": var.span,
        }
        bound = check_against(dataset, decl, bindings=bound)
    return bound


def load(
    path_or_text: str | Path, *, model: str | None = None, data: Any = None, **bindings: int
) -> Model:
    """Parse, check and compile a spec (a path or the text itself).

    Symbolic sizes come from ``bindings`` (``D=64``) and, when ``data`` is given, from the data
    set via :func:`bind_sizes`.  ``model`` picks one model of a file that holds several.
    """
    from gendsl.analysis.check import load_checked

    checked = load_checked(path_or_text, model=model)
    sizes = dict(bindings) if data is None else bind_sizes(checked, data, bindings)
    return compile_model(checked, bindings=sizes)
