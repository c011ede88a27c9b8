"""The typed nodes of the intermediate representation (IR).

The checker turns every expression and statement a back end reads into these nodes
(:mod:`gendsl.analysis.to_ir`).  They mirror the syntax tree's classes and field names, so code
that walked the tree reads the IR unchanged, and they add what the checker resolved:

- a :class:`Name` says what it refers to (``role``: a variable's role — ``data``, ``latent``,
  ``condition``, ``derived``, ``noised``, ``noise`` — or ``let``, ``network``, ``flow``,
  ``param`` (a parameter of a let function or an energy), ``size``, ``constant``, ``time``,
  ``differential`` (``dt``, ``dw`` in an sde), ``word`` (a library word such as ``alternate``))
  and, for a variable, its :class:`~gendsl.ir.types.VarType`;
- a :class:`Call` says what it calls (``kind``: ``network``, ``flow``, ``let``,
  ``distribution``, ``math``, ``constructor``, ``special`` or ``option``) and, for a network
  call, the output shape the checker inferred;
- sugar the back ends used to re-read from the syntax is a node of its own:
  :class:`Consistency` (``predict x0 = consistency(f, sigma_data = 0.5)``),
  :class:`Quantize` (``e = quantize(enc(x))``) and :class:`Derivative` (``d(E)/dt``).

The statements are the ones the back ends read; declarations, networks, sample statements,
the guide, the loss, the sampler and ``train { }`` reach them as the checked
:class:`~gendsl.ir.types.Variable`, :class:`~gendsl.ir.types.NetSpec`,
:class:`~gendsl.ir.model.Site` and :class:`~gendsl.ir.types.Opt` values instead.

Every node is a frozen dataclass with the :class:`~gendsl.source.Span` it was written at; spans,
shapes and types take no part in equality.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, fields
from typing import Any

from gendsl.ir.types import Opt, Shape, VarType
from gendsl.source import Span, span_field

__all__ = [
    "CALL_KINDS",
    "NAME_ROLES",
    "SDE",
    "Assign",
    "BinOp",
    "Call",
    "Chain",
    "Consistency",
    "Couple",
    "Critic",
    "Derivative",
    "Energy",
    "Expr",
    "Flow",
    "FlowItem",
    "Guidance",
    "Index",
    "KwArg",
    "Layer",
    "Let",
    "List",
    "Name",
    "Neg",
    "Node",
    "Num",
    "Option",
    "Path",
    "Predict",
    "Quantize",
    "Repeat",
    "Stmt",
    "Str",
    "walk",
]

#: What a :class:`Name` can refer to (besides a variable's role).
NAME_ROLES = (
    "let",
    "network",
    "flow",
    "param",
    "size",
    "constant",
    "time",
    "differential",
    "word",
)

#: What a :class:`Call` can call.
CALL_KINDS = (
    "network",
    "flow",
    "let",
    "distribution",
    "math",
    "reduction",
    "constructor",
    "special",
    "option",
)




def _info(default: Any = None) -> Any:
    return field(default=default, compare=False, repr=False)


@dataclass(frozen=True)
class Node:
    """Base of every IR node."""

    def children(self) -> Iterator[Node]:
        """The direct child nodes, in source order."""
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, Node):
                yield value
            elif isinstance(value, tuple):
                yield from (v for v in value if isinstance(v, Node))


def walk(node: Node) -> Iterator[Node]:
    """Every node below ``node`` (itself included), depth first, without recursion."""
    stack = [node]
    while stack:
        current = stack.pop()
        yield current
        stack.extend(reversed(list(current.children())))


# ------------------------------------------------------------------------------ expressions


@dataclass(frozen=True)
class Num(Node):
    """A number; ``value`` is an ``int`` when written without a point or exponent."""

    value: int | float
    span: Span = span_field()


@dataclass(frozen=True)
class Str(Node):
    """A string (the value, without quotes or escapes)."""

    value: str
    span: Span = span_field()


@dataclass(frozen=True)
class Name(Node):
    """A resolved reference: ``role`` says to what (module docstring), ``type`` is a
    variable's type (``None`` for anything else)."""

    id: str
    span: Span = span_field()
    role: str = _info("word")
    type: VarType | None = _info()


@dataclass(frozen=True)
class KwArg(Node):
    """A named argument ``name = value`` (also a ``train { }`` entry)."""

    name: str
    value: Expr
    span: Span = span_field()


@dataclass(frozen=True)
class Call(Node):
    """``func(args..., name = value...)``; ``kind`` says what ``func`` is (module docstring),
    ``shape`` the per-sample shape of a network's output where the checker inferred it, and of
    a reduction's (``sum``, ``mean``, ``norm``, ``dot``) argument: the event axes it reduces."""

    func: str
    args: tuple[Expr, ...] = ()
    kwargs: tuple[KwArg, ...] = ()
    span: Span = span_field()
    func_span: Span = span_field()
    kind: str = _info("option")
    shape: Shape | None = _info()

    def kwarg(self, name: str) -> KwArg | None:
        """The named argument ``name``, if given."""
        return next((k for k in self.kwargs if k.name == name), None)


@dataclass(frozen=True)
class Consistency(Node):
    """``consistency(f, sigma_data = s)``: the consistency parametrisation
    ``c_skip(t) x_t + c_out(t) f(x_t, t)`` of ``predict x0`` with the network ``f``
    (Song et al. 2023).

    ``kwargs`` are the named arguments as written (the printer reads them); ``sigma_data`` is
    their value, defaulted."""

    net: Name
    sigma_data: float
    kwargs: tuple[KwArg, ...] = ()
    span: Span = span_field()
    func_span: Span = span_field()


@dataclass(frozen=True)
class Quantize(Node):
    """``quantize(enc(x))``: the nearest codebook entry of each code vector of ``operand``,
    with a straight-through gradient (van den Oord et al. 2017)."""

    operand: Expr
    span: Span = span_field()
    func_span: Span = span_field()


@dataclass(frozen=True)
class Derivative(Node):
    """``d(E)/dt``: the derivative of ``operand`` in ``time`` (the name after the ``d`` of the
    divisor; the symbolic core checks that it is the process's time)."""

    operand: Expr
    time: str
    span: Span = span_field()
    time_span: Span = span_field()


@dataclass(frozen=True)
class Index(Node):
    """``base[index]``: indexes the first per-sample (event) axis of ``base``, which has
    ``rank`` event axes (``None``: not known to the checker; the leading axis is indexed)."""

    base: Expr
    index: Expr
    span: Span = span_field()
    rank: int | None = _info()


@dataclass(frozen=True)
class BinOp(Node):
    """A binary operation; ``op`` is one of ``+ - * / ^``."""

    op: str
    left: Expr
    right: Expr
    span: Span = span_field()


@dataclass(frozen=True)
class Neg(Node):
    """Unary minus."""

    operand: Expr
    span: Span = span_field()


@dataclass(frozen=True)
class List(Node):
    """``[a, b, ...]``."""

    items: tuple[Expr, ...]
    span: Span = span_field()


Expr = Num | Str | Name | Call | Index | BinOp | Neg | List | Consistency | Quantize | Derivative


# ------------------------------------------------------------------------------ statements


@dataclass(frozen=True)
class Let(Node):
    """``let name = expr`` or ``let f(t) = expr``."""

    name: str
    params: tuple[str, ...]
    value: Expr
    span: Span = span_field()
    name_span: Span = span_field()


@dataclass(frozen=True)
class Assign(Node):
    """``target = expr``: a deterministic node (push-forward, quantiser, flow output)."""

    target: str
    value: Expr
    span: Span = span_field()
    target_span: Span = span_field()


@dataclass(frozen=True)
class Layer(Node):
    """One layer of a flow: ``actnorm``, ``affine_coupling(mask = alternate, net = MLP(...))``."""

    name: str
    args: tuple[Expr, ...] = ()
    kwargs: tuple[KwArg, ...] = ()
    span: Span = span_field()


@dataclass(frozen=True)
class Repeat(Node):
    """``repeat N { layers }``."""

    count: int
    body: tuple[FlowItem, ...]
    span: Span = span_field()


FlowItem = Layer | Repeat


@dataclass(frozen=True)
class Flow(Node):
    """``flow f { layers }``: an invertible map."""

    name: str
    body: tuple[FlowItem, ...]
    span: Span = span_field()
    name_span: Span = span_field()


@dataclass(frozen=True)
class SDE(Node):
    """``sde dx = F * dt + G * dw, t in [t0, t1]``."""

    differential: str
    rhs: Expr
    time: str
    t0: Expr
    t1: Expr
    span: Span = span_field()
    differential_span: Span = span_field()


@dataclass(frozen=True)
class Chain(Node):
    """``chain x[k] ~ Dist(...), k in lo..hi``: a discrete forward Markov chain."""

    var: str
    index: str
    dist: Call
    range_var: str
    lo: Expr
    hi: Expr
    span: Span = span_field()


@dataclass(frozen=True)
class Path(Node):
    """``path x_t = expr``: a probability path between ``x0`` and ``x1``."""

    target: str
    value: Expr
    span: Span = span_field()


@dataclass(frozen=True)
class Option(Node):
    """A library choice, bare or with arguments: ``elbo``, ``ot(exact)``, ``ode(steps = 20)``."""

    name: str
    args: tuple[Expr, ...] = ()
    kwargs: tuple[KwArg, ...] = ()
    span: Span = span_field()

    def kwarg(self, name: str) -> KwArg | None:
        """The named argument ``name``, if given."""
        return next((k for k in self.kwargs if k.name == name), None)


@dataclass(frozen=True)
class Couple(Node):
    """``couple x0, x1 by coupling``; ``checked`` is the coupling with every default filled in."""

    left: str
    right: str
    coupling: Option
    span: Span = span_field()
    checked: Opt | None = _info()


@dataclass(frozen=True)
class Predict(Node):
    """``predict kind = expr``: what the network estimates."""

    kind: str
    value: Expr
    span: Span = span_field()
    kind_span: Span = span_field()


@dataclass(frozen=True)
class Critic(Node):
    """``critic D``, ``critic D(x, y)`` or ``critic name = expr``; ``params``: the variables
    the network ``D`` is called on (empty: the data alone)."""

    name: str
    value: Expr | None
    span: Span = span_field()
    params: tuple[str, ...] = ()


@dataclass(frozen=True)
class Energy(Node):
    """``energy E(x)`` (the network E is the energy) or ``energy U(x) = expr``."""

    name: str
    params: tuple[str, ...]
    value: Expr | None
    span: Span = span_field()


@dataclass(frozen=True)
class Guidance(Node):
    """``guidance classifier_free(scale = 3)``; ``value`` is the option as plain Python."""

    option: Option
    span: Span = span_field()
    value: Opt | None = _info()


Stmt = Let | Assign | Flow | SDE | Chain | Path | Couple | Predict | Critic | Energy | Guidance
