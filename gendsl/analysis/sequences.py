"""Condition inputs of networks, for the shapes pass: sequences ``[L, E]`` (a condition such as
``c : real[L, E]``, the token embeddings of a caption) and FiLM-modulated MLPs.

A ``UNet`` attends to one sequence input through its ``cross_attention`` blocks (Rombach et al.
2022, Sec. 3.3) at resolutions that are heights of its levels; declaring the blocks without a
sequence input, giving a UNet a sequence without the blocks (it would be flattened into the time
embedding), or a resolution no level has, is a located error.  Other networks flatten a
sequence (an MLP concatenates it with its other inputs, or with ``film = true`` modulates its
hidden layers by them, which needs a condition to modulate with).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from gendsl.analysis.model import NetSpec, to_value
from gendsl.frontend import ast
from gendsl.source import Span

__all__ = ["check_condition_inputs"]

Report = Callable[[str, Span], None]


def _declared(decl: ast.Net, name: str) -> list[object]:
    kw = decl.constructor.kwarg(name)
    if kw is None:
        return []
    try:
        value = to_value(kw.value)
    except TypeError:
        return []
    return value if isinstance(value, list) else [value]


def _level_heights(spec: NetSpec, decl: ast.Net) -> list[int] | None:
    """The feature-map heights of a UNet's levels: its image input's height padded to a
    multiple of 2^(levels - 1) (as :func:`gendsl.nn.unet.padding_for`), halved per level."""
    widths = _declared(decl, "channels") or [32, 64]
    heights = [s[1] for s in spec.in_shapes if len(s) == 3 and isinstance(s[1], int)]
    if not heights:
        return None
    top = 2 ** (len(widths) - 1)
    padded = heights[0] + (-heights[0] % top)
    return [padded // 2**i for i in range(len(widths))]


def check_condition_inputs(
    spec: NetSpec, decl: ast.Net, names: Sequence[str], span: Span, report: Report
) -> None:
    """The checks of the module docstring for the network ``spec`` used at ``span``."""
    film = spec.kind == "MLP" and _declared(decl, "film") == [True]
    if film and len(names) < 2 and not spec.time and spec.cond_classes is None:
        report(
            f"network '{spec.name}' declares film = true but is given no condition to "
            f"modulate with; give it one after its input, e.g. '{spec.name}(x, c)'",
            span,
        )
    if spec.kind == "UNet":
        _check_unet(spec, decl, names, span, report)
        heights = _level_heights(spec, decl)
        missing = [r for r in _declared(decl, "cross_attention") if r not in (heights or [r])]
        if missing:
            report(
                f"network '{spec.name}' declares cross_attention at resolution "
                f"{missing}, but its levels have heights {heights}",
                span,
            )


def _check_unet(
    spec: NetSpec, decl: ast.Net, names: Sequence[str], span: Span, report: Report
) -> None:
    """A ``UNet`` has ``cross_attention`` exactly when it is given one sequence input;
    ``names`` are its tensor inputs (the arguments other than ``t`` and labels)."""
    sequences = [
        (arg, shape) for arg, shape in zip(names, spec.in_shapes, strict=True) if len(shape) == 2
    ]
    cross = _declared(decl, "cross_attention")
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
