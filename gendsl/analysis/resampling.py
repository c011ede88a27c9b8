"""The resolution of a ``ConvNet``'s stride-2 stages, for the shapes pass.

A ``ConvNet`` encoder halves an image ``down`` times (``down = 2``: 28 → 14 → 7, an odd size
padded: 7 → 4) and a transposed one doubles it ``up`` times; without the option the number of
stages follows from the input and output shapes.  The VQ code grid ``e = quantize(enc(x))``
is the encoder's grid (van den Oord et al. 2017, Sec. 4.1).  The arithmetic is
:mod:`gendsl.strides`, which the network itself uses, so what the checker accepts builds.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from gendsl.analysis import library as lib
from gendsl.analysis.model import to_value
from gendsl.frontend import ast
from gendsl.ir import NetSpec, Shape
from gendsl.source import Span
from gendsl.strides import halved, stride_stages

__all__ = ["check_declaration", "check_stages", "code_grid"]

Report = Callable[[str, Span], None]
_CONV = "ConvNet"


def _option(decl: ast.Net, name: str) -> tuple[Any, Span | None]:
    """The plain value of the constructor's option ``name`` (the library default when absent)
    and the option's span."""
    kw = decl.constructor.kwarg(name)
    if kw is None:
        return lib.NETWORKS[_CONV].params[name].default, None
    try:
        return to_value(kw.value), kw.span
    except TypeError:
        return None, kw.span


def _count(value: Any) -> int | None:
    """``value`` when it is a stage count (a non-negative int); the option checker reports the
    rest."""
    ok = isinstance(value, int) and not isinstance(value, bool) and value >= 0
    return value if ok else None


def _ints(shape: Shape) -> bool:
    return all(isinstance(s, int) for s in shape)


def check_declaration(decl: ast.Net, report: Report) -> None:
    """``down`` only on an encoder, ``up`` only on a transposed ``ConvNet``, and no more
    stages than ``channels`` has."""
    if decl.constructor.func != _CONV:
        return
    transpose = _option(decl, "transpose")[0] is True
    channels = _option(decl, "channels")[0]
    for name, other, wrong in (("down", "up", transpose), ("up", "down", not transpose)):
        value, span = _option(decl, name)
        k = _count(value)
        if k is None or span is None:
            continue
        if wrong:
            kind = "a transposed ConvNet" if transpose else "an encoder"
            report(f"{name} is not an option of {kind}; write {other} = {k}", span)
        elif isinstance(channels, list) and k > len(channels):
            report(
                f"{name} = {k} needs {k} convolution stages, but channels has "
                f"{len(channels)}; add widths to channels or lower {name}",
                span,
            )


def code_grid(decl: ast.Net, src: Shape | None, dim: Shape, report: Report) -> Shape:
    """The shape of the code ``quantize(net(x))`` for a code of ``dim``: ``dim`` and, when
    ``x`` is an image and ``net`` a ``ConvNet`` or ``UNet``, the encoder's grid (``x``'s
    height and width halved ``down`` times)."""
    if decl.constructor.func not in (_CONV, "UNet") or src is None or len(src) != 3:
        return dim
    value, span = _option(decl, "down") if decl.constructor.func == _CONV else (None, None)
    down = _count(value)
    if not down:
        return (*dim, *src[1:])
    if not _ints(src[1:]):
        report(
            f"down = {down} needs the image's height and width as numbers, got "
            f"({', '.join(map(str, src))}); declare them, e.g. image[1, 28, 28]",
            span or decl.span,
        )
        return (*dim, *src[1:])
    return (*dim, *halved(src[1:], down))


def check_stages(spec: NetSpec, decl: ast.Net, span: Span, report: Report) -> None:
    """A ``ConvNet`` from an image to an image: its declared or inferred stride-2 stages map
    the input's grid to the output's (the message of :mod:`gendsl.strides`)."""
    if spec.kind != _CONV or len(spec.out_shape) < 3 or not _ints(spec.out_shape):
        return
    images = [s for s in spec.in_shapes if len(s) == 3]
    sizes = {s[1:] for s in images}
    channels = _option(decl, "channels")[0]
    if len(sizes) != 1 or not _ints(images[0]) or not isinstance(channels, list):
        return
    (size,) = sizes
    out = spec.out_shape[-2:]
    transpose = _option(decl, "transpose")[0] is True
    name = "up" if transpose else "down"
    k = _count(_option(decl, name)[0])
    if k is not None and k > len(channels):
        return  # reported with the declaration
    if not transpose and (out[0] > size[0] or out[1] > size[1]):
        return  # the network says to use transpose = true
    try:
        stride_stages(size, out, len(channels), k, transpose=transpose)
    except ValueError as err:
        fix = "" if k is None else f"; change {name}"
        report(f"network '{spec.name}': {err}{fix}", span)
