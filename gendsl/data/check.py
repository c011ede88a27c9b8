"""Check a spec's ``data`` declaration against the data it is given.

A declaration reaches here as a plain dict from the front end::

    {"name": "x", "type": "binary", "shape": ["D"], "span": Span(...) or None}

``type`` is ``real``, ``binary``, ``image`` or ``label``; ``shape`` lists sizes, each an int or a
symbol. :func:`check_against` binds every symbol to the size found in the data and raises
:class:`~gendsl.errors.DataError` naming both sides when they disagree.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch

from gendsl.data.dataset import Dataset
from gendsl.errors import DataError, InternalError
from gendsl.source import render

__all__ = ["check_against", "check_conditions", "format_type"]

_TYPES = ("real", "binary", "image", "label")


def format_type(kind: str, shape: Sequence[int | str]) -> str:
    """The spec spelling of a type, e.g. ``binary[D]`` or ``image[1, 8, 8]``."""
    return f"{kind}[{', '.join(str(d) for d in shape)}]"


def _shape_text(shape: Sequence[int]) -> str:
    return f"[{', '.join(str(d) for d in shape)}]"


def _bind_shape(
    declared: Sequence[int | str], actual: Sequence[int], bindings: dict[str, int]
) -> str | None:
    """Bind symbols in ``declared`` to ``actual`` in place; the reason for a mismatch, or None."""
    if len(declared) != len(actual):
        axes = "axis" if len(actual) == 1 else "axes"
        return (
            f"has samples of shape {_shape_text(actual)} "
            f"({len(actual)} {axes}, not {len(declared)})"
        )
    first_axis: dict[str, int] = {}
    for axis, (want, size) in enumerate(zip(declared, actual, strict=True)):
        if isinstance(want, int):
            if want != size:
                return (
                    f"has samples of shape {_shape_text(actual)} "
                    f"(axis {axis} has size {size}, not {want})"
                )
        elif want in bindings and bindings[want] != size:
            where = (
                f"{bindings[want]} from axis {first_axis[want]}"
                if want in first_axis
                else f"already {bindings[want]}"
            )
            return (
                f"has samples of shape {_shape_text(actual)} "
                f"({want} is {where} but axis {axis} has size {size})"
            )
        else:
            first_axis.setdefault(want, axis)
            bindings[want] = size
    return None


def _check_labels(
    dataset: Dataset, declared: Sequence[int | str], bindings: dict[str, int]
) -> str | None:
    if dataset.y is None:
        return "has no labels"
    if len(declared) != 1:
        return "has labels, and label types take one size, the number of classes"
    top = int(dataset.y.max()) if dataset.y.numel() else -1
    (want,) = declared
    if isinstance(want, str):
        if want in bindings and top >= bindings[want]:
            return f"has labels up to {top} ({want} is already {bindings[want]})"
        bindings.setdefault(want, dataset.num_classes or top + 1)
        return None
    if top >= want:
        return f"has labels up to {top} (label[{want}] needs 0 <= y < {want})"
    return None


def _check_values(kind: str, x: torch.Tensor) -> str | None:
    """Why the values of ``x`` do not fit ``kind``, or None."""
    if x.numel() == 0:
        return None
    if x.dtype == torch.uint8:  # 8-bit intensities k/255: finite and in [0, 1] by construction
        if kind == "binary" and not bool(((x == 0) | (x == 255)).all()):
            return "has 8-bit grey levels that are not 0/1; binarize it first"
        return None
    bad = int((~torch.isfinite(x)).sum())
    if bad:
        return f"has {bad} non-finite values (NaN or inf)"
    lo, hi = float(x.min()), float(x.max())
    if kind == "binary" and not bool(((x == 0) | (x == 1)).all()):
        return f"has values in [{lo:g}, {hi:g}] that are not 0/1"
    if kind == "image" and (lo < 0.0 or hi > 1.0):
        return f"has values in [{lo:g}, {hi:g}]; image data must lie in [0, 1]"
    return None


def check_against(
    dataset: Dataset, decl: Mapping[str, Any], *, bindings: Mapping[str, int] | None = None
) -> dict[str, int]:
    """Check ``dataset`` against a data declaration; return the symbol bindings.

    ``bindings`` holds sizes already bound by other declarations (a symbol must have one value
    across the spec); the result contains them plus the new ones, e.g. ``{"D": 64}``. A type
    ``label[K]`` is checked against the labels ``dataset.y`` (``K`` binds to the number of
    classes); every other type against ``dataset.x``: its per-sample shape, finiteness, 0/1 values
    for ``binary`` and ``[0, 1]`` values for ``image``.
    """
    kind, declared = decl["type"], list(decl["shape"])
    if kind not in _TYPES:
        raise InternalError(f"unknown data type {kind!r} in the declaration of {decl['name']!r}")
    bound = dict(bindings or {})
    if kind == "label":
        reason = _check_labels(dataset, declared, bound)
    else:
        reason = _bind_shape(declared, dataset.shape, bound) or _check_values(kind, dataset.x)
    if reason is None:
        return bound
    declared_as = format_type(kind, declared)
    message = f"data {decl['name']} is declared {declared_as} but {dataset.name} {reason}"
    span = decl.get("span")
    raise DataError(message if span is None else render(None, span, message))


def check_conditions(
    dataset: Dataset, decl: Mapping[str, Any], *, bindings: Mapping[str, int] | None = None
) -> dict[str, int]:
    """Check the real conditions ``dataset.c`` (an ``.npz``'s ``c``) against a declaration
    ``condition c : real[L, E]``; return the symbol bindings (as :func:`check_against`)."""
    bound = dict(bindings or {})
    declared = list(decl["shape"])
    declared_as = format_type(decl["type"], declared)
    if dataset.c is None:
        reason = (
            "has no conditions; train on an .npz holding the arrays x and c "
            f"(c of shape [n, {', '.join(str(d) for d in declared)}])"
        )
    else:
        found = _bind_shape(declared, tuple(dataset.c.shape[1:]), bound)
        reason = None if found is None else found.replace("has samples", "has conditions", 1)
    if reason is None:
        return bound
    message = f"condition {decl['name']} is declared {declared_as} but {dataset.name} {reason}"
    span = decl.get("span")
    raise DataError(message if span is None else render(None, span, message))
