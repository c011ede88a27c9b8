"""Sequence inputs ``[L, E]`` (a condition such as ``c : real[L, E]``, the token embeddings of a
caption) and the networks that read them, for the shapes pass.

A ``UNet`` attends to one sequence input through its ``cross_attention`` blocks (Rombach et al.
2022, Sec. 3.3); declaring the blocks without a sequence input, or giving a UNet a sequence
without the blocks (it would be flattened into the time embedding), is a located error.  Other
networks flatten a sequence (an MLP concatenates it with its other inputs).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from gendsl.analysis.model import NetSpec, to_value
from gendsl.frontend import ast
from gendsl.source import Span

__all__ = ["check_cross_attention"]

Report = Callable[[str, Span], None]


def _declared(decl: ast.Net) -> list[object]:
    kw = decl.constructor.kwarg("cross_attention")
    if kw is None:
        return []
    try:
        value = to_value(kw.value)
    except TypeError:
        return []
    return value if isinstance(value, list) else [value]


def check_cross_attention(
    spec: NetSpec, decl: ast.Net, names: Sequence[str], span: Span, report: Report
) -> None:
    """A ``UNet`` has ``cross_attention`` exactly when it is given one sequence input;
    ``names`` are its tensor inputs (the arguments other than ``t`` and labels)."""
    if spec.kind != "UNet":
        return
    sequences = [
        (arg, shape) for arg, shape in zip(names, spec.in_shapes, strict=True) if len(shape) == 2
    ]
    cross = _declared(decl)
    if cross and not sequences:
        report(
            f"network '{spec.name}' declares cross_attention = {cross} but is given no sequence "
            "input [L, E]; give it one, e.g. 'condition c : real[4, 16]' and "
            f"'{spec.name}(x_t, t, c)'",
            span,
        )
    elif sequences and not cross:
        arg, shape = sequences[0]
        report(
            f"network '{spec.name}' is given the sequence '{arg}' of shape "
            f"({', '.join(str(s) for s in shape)}) but declares no cross_attention; add e.g. "
            "cross_attention = [8] to its UNet(...), or give it a vector real[E]",
            span,
        )
    elif len(sequences) > 1:
        names = ", ".join(f"'{a}'" for a, _ in sequences)
        report(
            f"network '{spec.name}' is given {len(sequences)} sequence inputs ({names}); "
            "cross-attention reads one: concatenate them into one condition real[L, E]",
            span,
        )
