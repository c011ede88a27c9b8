"""The value types of the IR: shapes, variable types, variables, networks and option values.

These are plain frozen dataclasses with no dependency on the syntax tree or on torch; the
checker fills them, the symbolic core and the back ends read them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from gendsl.source import Span

__all__ = ["NetSpec", "Opt", "Shape", "VarType", "Variable"]

#: A per-sample shape; a ``str`` entry is a symbolic size (``D``) bound from the data.
Shape = tuple[int | str, ...]


@dataclass(frozen=True)
class Opt:
    """A library option written as a call: ``linear(0, 1, steps = 100)``, ``ot(exact)``."""

    name: str
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)
    span: Span | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class VarType:
    """A variable's type: ``kind`` is real, binary, image, label or code.

    ``shape`` is the per-sample shape (``label[10]`` has shape ``()`` and ``classes == 10``;
    ``code[K = 64, dim = 16]`` has ``classes == 64`` and the codebook dimension in ``shape``).
    """

    kind: str
    shape: Shape
    classes: int | str | None = None


@dataclass(frozen=True)
class Variable:
    """A named random or deterministic quantity of the model.

    ``role``: ``data`` (observed), ``latent``, ``condition``, ``derived`` (``v = expr``),
    ``noised`` (the ``x_t`` an sde/chain/path introduces), or ``noise`` (``w`` in a path).
    """

    name: str
    role: str
    type: VarType
    span: Span


@dataclass(frozen=True)
class NetSpec:
    """A network and the sizes inferred from where it is used.

    ``inputs`` are the argument names of (the first) use, in order; ``in_shapes`` the shapes of
    the tensor inputs among them (the time ``t`` and a ``label`` condition excluded: ``time`` and
    ``cond_classes`` say whether they enter).  ``out_shape`` is what the use needs, e.g. twice a
    latent's size for ``Normal(enc(x))`` (loc and scale), ``()`` for a critic or an energy.
    """

    name: str
    kind: str
    options: dict[str, Any]
    inputs: tuple[str, ...]
    in_shapes: tuple[Shape, ...]
    out_shape: Shape
    time: bool
    cond_classes: int | str | None
    span: Span
