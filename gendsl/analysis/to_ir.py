"""From the checker's record to the IR: the last step of checking.

:func:`to_ir` converts a checked model's syntax-tree nodes into :mod:`gendsl.ir` nodes, once:
every name is resolved (a variable's role and type, a let, a network, a parameter, the time,
a differential, a library word), every call says what it calls (with a network's inferred
output shape), and the sugar the back ends used to re-read from the syntax becomes a node of its
own — ``consistency(f, ...)`` a :class:`~gendsl.ir.Consistency` with its ``sigma_data``,
``quantize(e)`` a :class:`~gendsl.ir.Quantize`, ``d(E)/dt`` a :class:`~gendsl.ir.Derivative`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from gendsl import ir
from gendsl.analysis import library as lib
from gendsl.analysis.event_shapes import event_shape
from gendsl.analysis.options import OptionChecker
from gendsl.distributions import DISTRIBUTIONS
from gendsl.errors import InternalError
from gendsl.frontend import ast
from gendsl.frontend.printer import format_statement
from gendsl.ir.values import to_value

if TYPE_CHECKING:
    from gendsl.analysis.model import CheckedModel, Site

__all__ = [
    "CONSUMED",
    "OPTION_VALUES",
    "Resolver",
    "expr_to_ir",
    "option_to_ir",
    "statement_to_ir",
    "to_ir",
]

#: The default ``sigma_data`` of ``consistency(f)`` (the library's).
_SIGMA_DATA = lib.SPECIAL_FUNCTIONS["consistency"].params["sigma_data"].default


@dataclass(frozen=True)
class Resolver:
    """What names mean in one model: its variables, lets, networks, flows and sizes, and the
    names bound locally (parameters of a let function, the time and differentials of an sde).
    Without ``sugar``, calls and quotients stay as written (option values)."""

    variables: dict[str, ir.Variable] = field(default_factory=dict)
    lets: frozenset[str] = frozenset()
    functions: frozenset[str] = frozenset()
    nets: dict[str, ir.NetSpec] = field(default_factory=dict)
    flows: frozenset[str] = frozenset()
    sizes: frozenset[str] = frozenset()
    local: dict[str, str] = field(default_factory=dict)
    sugar: bool = True

    def bind(self, names: dict[str, str]) -> Resolver:
        """This resolver with ``names`` (name -> role) bound locally."""
        return Resolver(
            self.variables,
            self.lets,
            self.functions,
            self.nets,
            self.flows,
            self.sizes,
            {**self.local, **names},
            self.sugar,
        )

    def name(self, e: ast.Name) -> ir.Name:
        n = e.id
        if n in self.local:
            return ir.Name(n, e.span, self.local[n])
        var = self.variables.get(n)
        if var is not None:
            return ir.Name(n, e.span, var.role, var.type)
        return ir.Name(n, e.span, self._role(n))

    def _role(self, n: str) -> str:
        for role, names in (
            ("let", self.lets),
            ("network", self.nets),
            ("flow", self.flows),
            ("size", self.sizes),
            ("constant", lib.CONSTANTS),
        ):
            if n in names:
                return role
        return "time" if n == "t" else "word"

    def call_kind(self, func: str) -> str:
        for kind, names in (
            ("network", self.nets),
            ("flow", self.flows),
            ("let", self.functions),
            ("distribution", DISTRIBUTIONS),
            ("math", lib.MATH_FUNCTIONS),
            ("reduction", lib.REDUCTIONS),
            ("constructor", lib.CONSTRUCTORS),
            ("special", lib.SPECIAL_FUNCTIONS),
        ):
            if func in names:
                return kind
        return "option"


#: Names resolved by nothing but the library; sugar rewritten.
_LIBRARY = Resolver()

#: For option values (:func:`gendsl.analysis.model.to_value`): calls stay calls.
OPTION_VALUES = Resolver(sugar=False)


def _kwargs(kwargs: tuple[ast.KwArg, ...], r: Resolver) -> tuple[ir.KwArg, ...]:
    return tuple(ir.KwArg(k.name, expr_to_ir(k.value, r), k.span) for k in kwargs)


def _call(e: ast.Call, r: Resolver) -> ir.Expr:
    args = tuple(expr_to_ir(a, r) for a in e.args)
    kwargs = _kwargs(e.kwargs, r)
    if r.sugar and e.func == "consistency" and len(args) == 1 and isinstance(args[0], ir.Name):
        sigma = next((to_value(k.value) for k in kwargs if k.name == "sigma_data"), _SIGMA_DATA)
        return ir.Consistency(args[0], float(sigma), kwargs, e.span, e.func_span)
    if r.sugar and e.func == "quantize" and len(args) == 1 and not kwargs:
        return ir.Quantize(args[0], e.span, e.func_span)
    kind = r.call_kind(e.func)
    net = r.nets.get(e.func) if kind == "network" else None
    shape = net.out_shape if net is not None else None
    if kind == "reduction" and args:
        shape = event_shape(args[0], r.variables)
    return ir.Call(e.func, args, kwargs, e.span, e.func_span, kind, shape)


def _derivative(e: ast.BinOp, r: Resolver) -> ir.Derivative:
    """``d(E) / dX``: the derivative of ``E`` in ``X``."""
    assert isinstance(e.left, ast.Call) and isinstance(e.right, ast.Name)
    return ir.Derivative(expr_to_ir(e.left.args[0], r), e.right.id[1:], e.span, e.right.span)


def _binop(e: ast.BinOp, r: Resolver) -> ir.Expr:
    """A binary operation; a left-associative chain is converted by a loop along its left
    spine (a flat sum of thousands of terms is a list, not a recursion)."""
    spine: list[ast.BinOp] = []
    node: ast.Expr = e
    while isinstance(node, ast.BinOp) and not (r.sugar and ast.is_derivative(node)):
        spine.append(node)
        node = node.left
    out = expr_to_ir(node, r)
    for n in reversed(spine):
        out = ir.BinOp(n.op, out, expr_to_ir(n.right, r), n.span)
    return out


def _index(e: ast.Index, r: Resolver) -> ir.Index:
    """``base[index]``; a chain's ``x[k - 1]`` (an index of local names) is the chain's step,
    not a coordinate (no rank)."""
    base, index = expr_to_ir(e.base, r), expr_to_ir(e.index, r)
    shape = event_shape(base, r.variables)
    stepped = any(isinstance(n, ir.Name) and n.id in r.local for n in ir.walk(index))
    rank = len(shape) if shape and not stepped else None
    return ir.Index(base, index, e.span, rank)


_CONVERT: dict[type, Callable[[Any, Resolver], ir.Expr]] = {
    ast.Num: lambda e, r: ir.Num(e.value, e.span),
    ast.Str: lambda e, r: ir.Str(e.value, e.span),
    ast.Name: lambda e, r: r.name(e),
    ast.Call: _call,
    ast.Index: _index,
    ast.Neg: lambda e, r: ir.Neg(expr_to_ir(e.operand, r), e.span),
    ast.List: lambda e, r: ir.List(tuple(expr_to_ir(i, r) for i in e.items), e.span),
}


def expr_to_ir(e: ast.Expr, r: Resolver = _LIBRARY) -> ir.Expr:
    """The IR of expression ``e``, its names resolved by ``r`` (library words without one)."""
    if isinstance(e, ast.BinOp):
        return _derivative(e, r) if r.sugar and ast.is_derivative(e) else _binop(e, r)
    convert = _CONVERT.get(type(e))
    if convert is None:
        raise TypeError(f"not an expression: {e!r}")
    return convert(e, r)


def option_to_ir(o: ast.Option, r: Resolver = _LIBRARY) -> ir.Option:
    """The IR of a library option ``name(args...)``."""
    return ir.Option(o.name, tuple(expr_to_ir(a, r) for a in o.args), _kwargs(o.kwargs, r), o.span)


def _flow_items(items: tuple[ast.FlowItem, ...], r: Resolver) -> tuple[ir.FlowItem, ...]:
    out: list[ir.FlowItem] = []
    for item in items:
        if isinstance(item, ast.Repeat):
            out.append(ir.Repeat(item.count, _flow_items(item.body, r), item.span))
        else:
            args = tuple(expr_to_ir(a, r) for a in item.args)
            out.append(ir.Layer(item.name, args, _kwargs(item.kwargs, r), item.span))
    return tuple(out)


def _sde(s: ast.SDE, r: Resolver) -> ir.SDE:
    inner = r.bind({s.time: "time", "d" + s.time: "differential", "dw": "differential"})
    return ir.SDE(
        s.differential,
        expr_to_ir(s.rhs, inner),
        s.time,
        expr_to_ir(s.t0, r),
        expr_to_ir(s.t1, r),
        s.span,
        s.differential_span,
    )


def _chain(s: ast.Chain, r: Resolver) -> ir.Chain:
    inner = r.bind({s.index: "param", s.range_var: "param"})
    dist = expr_to_ir(s.dist, inner)
    assert isinstance(dist, ir.Call)
    return ir.Chain(
        s.var, s.index, dist, s.range_var, expr_to_ir(s.lo, r), expr_to_ir(s.hi, r), s.span
    )


def _coupling(o: ast.Option) -> ir.Opt:
    """A checked coupling option with its defaults filled in."""

    def report(message: str, span: Any) -> None:
        raise InternalError(f"the checker passed a bad coupling ({message}); please report")

    opt = OptionChecker(report).option(lib.COUPLINGS, o, "coupling")
    if opt is None:
        raise InternalError("the checker passed an unknown coupling; please report")
    return opt


def _params(params: tuple[str, ...], r: Resolver) -> Resolver:
    return r.bind(dict.fromkeys(params, "param"))


def _optional(e: ast.Expr | None, r: Resolver) -> ir.Expr | None:
    return expr_to_ir(e, r) if e is not None else None


def _named_call(e: ast.Call, r: Resolver) -> ir.Call:
    out = expr_to_ir(e, r)
    assert isinstance(out, ir.Call)
    return out


_STATEMENTS: dict[type, Callable[[Any, Resolver], ir.Stmt]] = {
    ast.Let: lambda s, r: ir.Let(
        s.name, s.params, expr_to_ir(s.value, _params(s.params, r)), s.span, s.name_span
    ),
    ast.Assign: lambda s, r: ir.Assign(
        s.target, expr_to_ir(s.value, r), s.span, s.target_span
    ),
    ast.Flow: lambda s, r: ir.Flow(s.name, _flow_items(s.body, r), s.span, s.name_span),
    ast.SDE: _sde,
    ast.Chain: _chain,
    ast.Path: lambda s, r: ir.Path(s.target, expr_to_ir(s.value, r), s.span),
    ast.Couple: lambda s, r: ir.Couple(
        s.left, s.right, option_to_ir(s.coupling, r), s.span, _coupling(s.coupling)
    ),
    ast.Predict: lambda s, r: ir.Predict(s.kind, expr_to_ir(s.value, r), s.span, s.kind_span),
    ast.Critic: lambda s, r: ir.Critic(s.name, _optional(s.value, r), s.span, s.params),
    ast.Energy: lambda s, r: ir.Energy(
        s.name, s.params, _optional(s.value, _params(s.params, r)), s.span
    ),
    ast.Guidance: lambda s, r: ir.Guidance(
        option_to_ir(s.option, r), s.span, to_value(option_to_ir(s.option, OPTION_VALUES))
    ),
}


#: The statements the back ends read (the others reach them as checked values).
CONSUMED = tuple(_STATEMENTS)


def statement_to_ir(s: ast.Stmt, r: Resolver = _LIBRARY) -> ir.Stmt:
    """The IR of statement ``s`` (one of :data:`CONSUMED`), its names resolved by ``r``."""
    return _STATEMENTS[type(s)](s, r)


def _site(site: Site, r: Resolver) -> ir.Site:
    params = {k: expr_to_ir(v, r) for k, v in site.params.items()}
    packed = _named_call(site.packed, r) if site.packed is not None else None
    return ir.Site(site.name, site.given, site.dist, params, packed, site.span)


def _resolver(m: CheckedModel) -> Resolver:
    return Resolver(
        variables=dict(m.variables),
        lets=frozenset(n for n, let in m.lets.items() if not let.params),
        functions=frozenset(n for n, let in m.lets.items() if let.params),
        nets=dict(m.nets),
        flows=frozenset(m.flows),
        sizes=frozenset(m.sizes),
    )


def _one(stmt: Any, r: Resolver) -> Any:
    return statement_to_ir(stmt, r) if stmt is not None else None


def to_ir(m: CheckedModel) -> ir.CheckedModel:
    """The IR of a checked model (the module docstring says what is resolved)."""
    r = _resolver(m)
    return ir.CheckedModel(
        name=m.name,
        family=m.family,
        source=m.source,
        statements=tuple(format_statement(s) for s in m.ast.body),
        name_span=m.ast.name_span,
        loss_option=next(
            (option_to_ir(s.option, r) for s in m.ast.body if isinstance(s, ast.Loss)), None
        ),
        variables=m.variables,
        lets={n: statement_to_ir(let, r) for n, let in m.lets.items()},
        nets=m.nets,
        sites=tuple(_site(s, r) for s in m.sites),
        guide=tuple(_site(s, r) for s in m.guide),
        assigns=tuple(statement_to_ir(a, r) for a in m.assigns),
        flows={n: statement_to_ir(f, r) for n, f in m.flows.items()},
        process=_one(m.process, r),
        path=_one(m.path, r),
        couple=_one(m.couple, r),
        predict=_one(m.predict, r),
        critic=_one(m.critic, r),
        energy=_one(m.energy, r),
        guidance=_one(m.guidance, r),
        loss=m.loss,
        sampler=m.sampler,
        train=m.train,
        sizes=m.sizes,
        graph=m.graph,
        conditional=m.conditional,
        base=m.base,
    )
