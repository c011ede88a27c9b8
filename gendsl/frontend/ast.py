"""The abstract syntax tree of a ``.gen`` spec.

Every node is a frozen dataclass carrying the :class:`~gendsl.source.Span` it was parsed from.
Spans take no part in equality, so two parses of equivalent text compare equal — the
pretty-printer's round trip (``parse(format(parse(s))) == parse(s)``) relies on this.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, fields

from gendsl.source import Span, span_field

__all__ = [
    "SDE",
    "Assign",
    "BinOp",
    "Call",
    "Chain",
    "Couple",
    "Critic",
    "Decl",
    "Energy",
    "Expr",
    "Flow",
    "FlowItem",
    "Guidance",
    "Guide",
    "Import",
    "Index",
    "KwArg",
    "Layer",
    "Let",
    "List",
    "Loss",
    "Model",
    "Name",
    "Neg",
    "Net",
    "Node",
    "Num",
    "Option",
    "Path",
    "Predict",
    "Program",
    "Repeat",
    "Sample",
    "SamplerDecl",
    "Stmt",
    "Str",
    "Train",
    "TypeExpr",
    "is_derivative",
    "walk",
]



@dataclass(frozen=True)
class Node:
    """Base of every AST node."""

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
    """A number literal; ``value`` is an ``int`` when written without a point or exponent."""

    value: int | float
    span: Span = span_field()


@dataclass(frozen=True)
class Str(Node):
    """A string literal (the value, without quotes or escapes)."""

    value: str
    span: Span = span_field()


@dataclass(frozen=True)
class Name(Node):
    """A reference to a variable, network, function, or library word."""

    id: str
    span: Span = span_field()


@dataclass(frozen=True)
class KwArg(Node):
    """A named argument ``name = value`` (also a ``train { }`` entry)."""

    name: str
    value: Expr
    span: Span = span_field()


@dataclass(frozen=True)
class Call(Node):
    """``func(args..., name = value...)``."""

    func: str
    args: tuple[Expr, ...] = ()
    kwargs: tuple[KwArg, ...] = ()
    span: Span = span_field()
    func_span: Span = span_field()

    def kwarg(self, name: str) -> KwArg | None:
        """The named argument ``name``, if given."""
        return next((k for k in self.kwargs if k.name == name), None)


@dataclass(frozen=True)
class Index(Node):
    """``base[index]``."""

    base: Expr
    index: Expr
    span: Span = span_field()


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


def is_derivative(e: Node) -> bool:
    """Whether ``e`` is ``d(E) / dX``: the derivative of one expression ``E`` in ``X`` (the
    parser groups ``a * d(E)/dt`` as ``a * (d(E)/dt)``)."""
    if not isinstance(e, BinOp) or e.op != "/":
        return False
    left, right = e.left, e.right
    return (
        isinstance(left, Call)
        and left.func == "d"
        and len(left.args) == 1
        and not left.kwargs
        and isinstance(right, Name)
        and right.id.startswith("d")
        and len(right.id) > 1
    )


Expr = Num | Str | Name | Call | Index | BinOp | Neg | List


# ------------------------------------------------------------------------------ statements


@dataclass(frozen=True)
class TypeExpr(Node):
    """A variable's type: ``real[D]``, ``image[1, 8, 8]``, ``code[K = 64, dim = 16]``."""

    kind: str
    args: tuple[Expr, ...]
    kwargs: tuple[KwArg, ...] = ()
    span: Span = span_field()


@dataclass(frozen=True)
class Decl(Node):
    """``data x : T``, ``latent z : T`` or ``condition y : T``."""

    role: str
    name: str
    type: TypeExpr
    span: Span = span_field()
    name_span: Span = span_field()


@dataclass(frozen=True)
class Use(Node):
    """``use ae = run("runs/vqvae")``: a trained run whose model the spec uses, frozen (its
    ``encode``/``decode`` are called as ``ae.encode(x)``, ``ae.decode(z)``)."""

    name: str
    source: Call
    span: Span = span_field()
    name_span: Span = span_field()


@dataclass(frozen=True)
class Let(Node):
    """``let name = expr`` or ``let f(t) = expr``."""

    name: str
    params: tuple[str, ...]
    value: Expr
    span: Span = span_field()
    name_span: Span = span_field()


@dataclass(frozen=True)
class Net(Node):
    """``net name = Constructor(...)``."""

    name: str
    constructor: Call
    span: Span = span_field()
    name_span: Span = span_field()


@dataclass(frozen=True)
class Sample(Node):
    """``target | given... ~ Dist(...)``: a random choice."""

    target: str
    given: tuple[Name, ...]
    dist: Call
    span: Span = span_field()
    target_span: Span = span_field()


@dataclass(frozen=True)
class Assign(Node):
    """``target = expr``: a deterministic node (push-forward, quantiser, flow output)."""

    target: str
    value: Expr
    span: Span = span_field()
    target_span: Span = span_field()


@dataclass(frozen=True)
class Guide(Node):
    """``guide { ... }``: the variational family."""

    body: tuple[Stmt, ...]
    span: Span = span_field()


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
    """``couple x0, x1 by coupling``."""

    left: str
    right: str
    coupling: Option
    span: Span = span_field()


@dataclass(frozen=True)
class Predict(Node):
    """``predict kind = expr``: what the network estimates."""

    kind: str
    value: Expr
    span: Span = span_field()
    kind_span: Span = span_field()


@dataclass(frozen=True)
class Critic(Node):
    """``critic D``, ``critic D(x, y)`` (the network D of those variables) or
    ``critic name = expr``."""

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
    """``guidance classifier_free(scale = 3)``."""

    option: Option
    span: Span = span_field()


@dataclass(frozen=True)
class Loss(Node):
    """``loss elbo(beta = 4)``."""

    option: Option
    span: Span = span_field()


@dataclass(frozen=True)
class SamplerDecl(Node):
    """``sample with dpm_solver(order = 2, steps = 20)``."""

    option: Option
    span: Span = span_field()


@dataclass(frozen=True)
class Train(Node):
    """``train { key = value ... }``: training defaults."""

    items: tuple[KwArg, ...]
    span: Span = span_field()


Stmt = (
    Decl
    | Use
    | Let
    | Net
    | Sample
    | Assign
    | Guide
    | Flow
    | SDE
    | Chain
    | Path
    | Couple
    | Predict
    | Critic
    | Energy
    | Guidance
    | Loss
    | SamplerDecl
    | Train
)


@dataclass(frozen=True)
class Model(Node):
    """``model name [extends base] { statements }``."""

    name: str
    base: str | None
    body: tuple[Stmt, ...]
    span: Span = span_field()
    name_span: Span = span_field()
    base_span: Span = span_field()


@dataclass(frozen=True)
class Import(Node):
    """``import "path.gen"``."""

    path: str
    span: Span = span_field()


@dataclass(frozen=True)
class Program(Node):
    """A whole file: its imports and models, in source order."""

    imports: tuple[Import, ...]
    models: tuple[Model, ...]
    span: Span = span_field()
