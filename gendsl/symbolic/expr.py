"""Translation of spec expressions to sympy.

:func:`to_sympy` inlines ``let`` constants and functions, the library's math functions and
constants, ``d(E)/dt`` (a derivative in time) and indexing of a ``linspace``/``zeros``/``ones``
schedule.  Indexing is 1-based, as in the math it transcribes: with ``let beta = linspace(a, b,
K)`` and ``k in 1..K``, ``beta[k]`` is β_k = a + (k - 1)(b - a)/(K - 1), a closed form in k.
Numbers become exact rationals (``0.1`` is 1/10) so that sympy integrates and simplifies exactly.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np
import sympy as sp

from gendsl import ir
from gendsl.errors import SpecError
from gendsl.ir.printer import format_expr

__all__ = ["VectorAccess", "lambdify_np", "number", "symbol", "to_sympy", "to_text"]


def symbol(name: str, *, time: str = "t") -> sp.Symbol:
    """The sympy symbol of a spec name: the time is non-negative, everything else real."""
    if name == time:
        return sp.Symbol(name, nonnegative=True)
    return sp.Symbol(name, real=True)


def number(value: int | float) -> sp.Expr:
    """An exact sympy number: ``0.1`` becomes 1/10 (from its shortest decimal text)."""
    if isinstance(value, int):
        return sp.Integer(value)
    return sp.Rational(repr(float(value)))


def is_zero(e: sp.Expr) -> bool:
    """Whether ``e`` is identically zero, in bounded time
    (:func:`gendsl.symbolic.tidy.vanishes`)."""
    from gendsl.symbolic.tidy import vanishes  # tidy -> store -> this module

    return vanishes(e)


def to_text(e: sp.Expr) -> str:
    """An expression in the spec's own notation (``^`` for powers)."""
    return sp.sstr(e).replace("**", "^")


def lambdify_np(e: sp.Expr, var: sp.Symbol) -> Callable[[np.ndarray], np.ndarray]:
    """A vectorised float64 numpy function of ``var``; constants broadcast to the input shape."""
    fn = sp.lambdify(var, e, modules="numpy")

    def call(x: np.ndarray | float) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        with np.errstate(all="ignore"):
            out = np.asarray(fn(x), dtype=np.float64)
        return np.broadcast_to(out, x.shape).copy()

    return call


def _is_derivative(e: ir.BinOp) -> bool:
    """Whether ``e`` is ``d(E) / ...`` (a time derivative, not a quotient)."""
    return e.op == "/" and isinstance(e.left, ir.Call) and e.left.func == "d"


@dataclass(frozen=True)
class VectorAccess:
    """One use ``v[i]`` of a schedule vector of length ``length`` (checked by the caller)."""

    name: str
    index: sp.Expr
    length: int
    node: ir.Index


_MATH: dict[str, Callable[..., sp.Expr]] = {
    "exp": sp.exp,
    "log": sp.log,
    "sqrt": sp.sqrt,
    "sin": sp.sin,
    "cos": sp.cos,
    "tan": sp.tan,
    "tanh": sp.tanh,
    "softplus": lambda x: sp.log(1 + sp.exp(x)),
    "sigmoid": lambda x: 1 / (1 + sp.exp(-x)),
    "abs": sp.Abs,
    "relu": lambda x: sp.Max(0, x),
    "min": sp.Min,
    "max": sp.Max,
}


@dataclass
class _Translator:
    lets: Mapping[str, ir.Let]
    time: str
    env: dict[str, sp.Expr]
    state: tuple[str, str, sp.Symbol] | None = None
    accesses: list[VectorAccess] = field(default_factory=list)
    _expanding: tuple[str, ...] = ()

    def __call__(self, e: ir.Expr) -> sp.Expr:
        if isinstance(e, ir.Num):
            return number(e.value)
        if isinstance(e, ir.Name):
            return self.name(e)
        if isinstance(e, ir.Neg):
            return -self(e.operand)
        if isinstance(e, ir.BinOp):
            return self.binop(e)
        if isinstance(e, ir.Call):
            return self.call(e)
        if isinstance(e, ir.Index):
            return self.index(e)
        if isinstance(e, ir.Derivative):
            return self.time_derivative(e)
        kind = "a string" if isinstance(e, ir.Str) else "a list"
        raise SpecError(f"expected a number-valued expression, found {kind}", e.span)

    def name(self, e: ir.Name) -> sp.Expr:
        if e.id in self.env:
            return self.env[e.id]
        if e.id == "pi":
            return sp.pi
        let = self.lets.get(e.id)
        if let is None:
            raise SpecError(
                f"'{e.id}' has no closed form here: expected a let, the time {self.time!r} or a "
                "number",
                e.span,
            )
        if let.params:
            raise SpecError(f"'{e.id}' is a function of {', '.join(let.params)}; call it", e.span)
        if _vector(let.value) is not None:
            raise SpecError(f"'{e.id}' is a vector; index it as {e.id}[k]", e.span)
        return self.inline(let, {}, e.span)

    def inline(self, let: ir.Let, bindings: dict[str, sp.Expr], span: object) -> sp.Expr:
        if let.name in self._expanding:
            chain = " -> ".join((*self._expanding, let.name))
            raise SpecError(f"let '{let.name}' is defined in terms of itself ({chain})", span)
        inner = _Translator(
            self.lets,
            self.time,
            {**_globals(self.env, self.time), **bindings},
            self.state,
            self.accesses,
            (*self._expanding, let.name),
        )
        return inner(let.value)

    def binop(self, e: ir.BinOp) -> sp.Expr:
        derivative = self.derivative(e)
        if derivative is not None:
            return derivative
        if e.op == "^":
            return self(e.left) ** self(e.right)
        return self.chain(e)

    def chain(self, e: ir.BinOp) -> sp.Expr:
        """A left-associative chain ``a + b - c ...`` or ``a * b / c ...`` as one sympy Add or
        Mul, by a loop along its left spine (no recursion, no quadratic re-flattening)."""
        level = ("+", "-") if e.op in ("+", "-") else ("*", "/")
        rights: list[ir.BinOp] = []
        node: ir.Expr = e
        while isinstance(node, ir.BinOp) and node.op in level and not _is_derivative(node):
            rights.append(node)
            node = node.left
        terms = [self(node)]
        for n in reversed(rights):
            value = self(n.right)
            terms.append(value if n.op in ("+", "*") else (-value if n.op == "-" else 1 / value))
        return sp.Add(*terms) if level[0] == "+" else sp.Mul(*terms)

    def time_derivative(self, e: ir.Derivative) -> sp.Expr:
        """``d(E)/dt``: the derivative of E in time."""
        if e.time != self.time:
            raise SpecError(f"expected d(E)/d{self.time}, found d(E)/d{e.time}", e.time_span)
        return sp.diff(self(e.operand), self.env.get(self.time, symbol(self.time)))

    def derivative(self, e: ir.BinOp) -> sp.Expr | None:
        """``d(...) / ...`` not of the form ``d(E)/dt``: the error that says what to write."""
        if not _is_derivative(e):
            return None
        if not (isinstance(e.right, ir.Name) and e.right.id == "d" + self.time):
            raise SpecError(
                f"expected d(E)/d{self.time}, found d(E)/{format_expr(e.right)}", e.right.span
            )
        if len(e.left.args) != 1 or e.left.kwargs:
            raise SpecError("d(E) takes exactly one expression", e.left.span)
        return sp.diff(self(e.left.args[0]), self.env.get(self.time, symbol(self.time)))

    def call(self, e: ir.Call) -> sp.Expr:
        if e.kwargs:
            raise SpecError(f"'{e.func}' takes no named arguments here", e.kwargs[0].span)
        if e.func == "d":
            raise SpecError(
                f"d(E) must be divided by d{self.time}: write d(E)/d{self.time}", e.span
            )
        if e.kind == "reduction":
            return self.reduction(e)
        args = [self(a) for a in e.args]
        if e.func in _MATH:
            expected = 2 if e.func in ("min", "max") else 1
            if len(args) != expected:
                raise SpecError(
                    f"{e.func} takes {expected} argument(s), found {len(args)}", e.span
                )
            return _MATH[e.func](*args)
        let = self.lets.get(e.func)
        if let is None or not let.params:
            what = "a constant" if let is not None else "not a function with a closed form"
            raise SpecError(f"cannot call '{e.func}' here: it is {what}", e.func_span)
        if len(args) != len(let.params):
            raise SpecError(
                f"'{e.func}' takes {len(let.params)} argument(s) ({', '.join(let.params)}), "
                f"found {len(args)}",
                e.span,
            )
        return self.inline(let, dict(zip(let.params, args, strict=True)), e.span)

    def reduction(self, e: ir.Call) -> sp.Expr:
        """``sum``, ``mean``, ``norm``, ``dot`` of scalars (a schedule's values): the value,
        the value, its absolute value, the product.  Over a vector's event axes they have no
        closed form here."""
        if e.shape:
            raise SpecError(
                f"{e.func}(...) reduces a per-sample vector: it is computed by the model, "
                "not derived symbolically (derivations read scalar schedules)",
                e.span,
            )
        args = [self(a) for a in e.args]
        if e.func == "dot":
            return args[0] * args[1]
        return sp.Abs(args[0]) if e.func == "norm" else args[0]

    def index(self, e: ir.Index) -> sp.Expr:
        i = self(e.index)
        if self.state is not None and isinstance(e.base, ir.Name) and e.base.id == self.state[0]:
            k = self.env[self.state[1]]
            if not is_zero(i - (k - 1)):
                raise SpecError(
                    f"a Markov chain step may use only the previous state {self.state[0]}"
                    f"[{self.state[1]}-1], found {format_expr(e)}",
                    e.span,
                )
            return self.state[2]
        let = self.lets.get(e.base.id) if isinstance(e.base, ir.Name) else None
        vec = _vector(let.value) if let is not None else None
        if vec is None:
            raise SpecError(
                f"only a schedule vector (let v = linspace(a, b, n)) can be indexed here, "
                f"found {format_expr(e.base)}",
                e.base.span,
            )
        kind, args = vec
        values = [self(a) for a in args]
        n = values[-1]
        if not (n.is_Integer and n > 0):
            raise SpecError(f"a vector length must be a positive integer, found {n}", let.span)
        self.accesses.append(VectorAccess(let.name, i, int(n), e))
        if kind == "zeros":
            return sp.Integer(0)
        if kind == "ones":
            return sp.Integer(1)
        a, b = values[0], values[1]
        return a + (i - 1) * (b - a) / (n - 1) if n > 1 else a


def _vector(value: ir.Expr) -> tuple[str, tuple[ir.Expr, ...]] | None:
    if isinstance(value, ir.Call) and value.func in ("linspace", "zeros", "ones"):
        return value.func, value.args
    return None


def _globals(env: dict[str, sp.Expr], time: str) -> dict[str, sp.Expr]:
    """The bindings a let body may see: the reserved names (time, differentials), not locals."""
    return {k: v for k, v in env.items() if k in (time, "d" + time, "dw")}


def to_sympy(
    expr: ir.Expr,
    lets: Mapping[str, ir.Let],
    *,
    time: str = "t",
    symbols: Mapping[str, sp.Expr] | None = None,
    state: tuple[str, str] | None = None,
    accesses: list[VectorAccess] | None = None,
) -> sp.Expr:
    """Translate ``expr`` to sympy, inlining ``lets``; raise a located SpecError otherwise.

    ``symbols`` binds further names (``x``, ``dt``, ``x0``, ``k``...) to sympy expressions; the
    time name is always bound to :func:`symbol` of it.  ``state = (x, k)`` lets a chain step use
    ``x[k-1]``, which becomes the symbol ``x_prev``.  Every schedule-vector access is appended to
    ``accesses`` so the caller can check its range.
    """
    env = {time: symbol(time, time=time), **(symbols or {})}
    st = (state[0], state[1], sp.Symbol(f"{state[0]}_prev", real=True)) if state else None
    return _Translator(lets, time, env, st, accesses if accesses is not None else [])(expr)
