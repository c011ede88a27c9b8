"""Evaluate spec expressions with torch.

An expression is compiled once by :func:`compile_expr` into a closure that takes a
:class:`Scope`: a mapping from names to tensors (variables, with the batch on the leading axes),
numbers (constants), or callables (networks, ``let`` functions).  Compiling walks the AST once,
so a training step calls closures instead of interpreting the tree.  Arithmetic broadcasts like
torch; plain numbers stay Python numbers until they meet a tensor.  Derived variables
(``h = dec(z)``) are evaluated on first use and memoised in the scope.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import Tensor

from gendsl import ir
from gendsl.errors import InternalError, UsageError

__all__ = [
    "LIBRARY",
    "Compiled",
    "Scope",
    "compile_expr",
    "evaluate",
    "let_function",
    "reduce_dot",
    "reduce_mean",
    "reduce_norm",
    "reduce_sum",
    "time_derivative",
]

Value = Tensor | float | int | Callable[..., Any]


def _unary(torch_fn: Callable[[Tensor], Tensor], math_fn: Callable[[float], float]):
    def apply(x: Tensor | float) -> Tensor | float:
        return torch_fn(x) if isinstance(x, Tensor) else math_fn(x)

    return apply


def _softplus(x: float) -> float:
    """log(1 + e^x), computed without overflow."""
    return max(x, 0.0) + math.log1p(math.exp(-abs(x)))


def _sigmoid(x: float) -> float:
    """1 / (1 + e^-x) = (1 + tanh(x / 2)) / 2, computed without overflow."""
    return 0.5 * (1.0 + math.tanh(0.5 * x))


def _as_tensor_like(a: Tensor | float, ref: Tensor) -> Tensor:
    """``a`` as a tensor on ``ref``'s device (a number takes ``ref``'s floating dtype)."""
    if isinstance(a, Tensor):
        return a
    dtype = ref.dtype if ref.is_floating_point() else None
    return torch.as_tensor(a, device=ref.device, dtype=dtype)


def _binary(torch_fn: Callable[[Tensor, Tensor], Tensor], py_fn: Callable[[float, float], float]):
    def apply(a: Tensor | float, b: Tensor | float) -> Tensor | float:
        if isinstance(a, Tensor) or isinstance(b, Tensor):
            ref = a if isinstance(a, Tensor) else b
            return torch_fn(_as_tensor_like(a, ref), _as_tensor_like(b, ref))
        return py_fn(a, b)

    return apply


#: The library functions and constants of the language (library.py's math table).
LIBRARY: dict[str, Value] = {
    "exp": _unary(torch.exp, math.exp),
    "log": _unary(torch.log, math.log),
    "sqrt": _unary(torch.sqrt, math.sqrt),
    "sin": _unary(torch.sin, math.sin),
    "cos": _unary(torch.cos, math.cos),
    "tan": _unary(torch.tan, math.tan),
    "tanh": _unary(torch.tanh, math.tanh),
    "abs": _unary(torch.abs, abs),
    "relu": _unary(torch.relu, lambda x: max(x, 0.0)),
    "softplus": _unary(torch.nn.functional.softplus, _softplus),
    "sigmoid": _unary(torch.sigmoid, _sigmoid),
    "min": _binary(torch.minimum, min),
    "max": _binary(torch.maximum, max),
    "pi": math.pi,
}

#: An expression compiled by :func:`compile_expr`: its value in a scope.
Compiled = Callable[["Scope"], Any]


class Scope(dict):
    """Names in scope during one evaluation.

    :param like: a tensor giving the device and dtype of constructed tensors (``zeros(n)``).
    :param derived: assignment targets and their compiled expressions, evaluated on first
        lookup and then stored in the scope (the mapping itself is not modified, so one mapping
        serves every scope of a model).
    :param parent: an enclosing scope consulted for names this one lacks.
    """

    __slots__ = ("derived", "like", "parent")

    def __init__(
        self,
        values: Mapping[str, Value],
        *,
        like: Tensor,
        derived: Mapping[str, Compiled] | None = None,
        parent: Scope | None = None,
    ):
        super().__init__(values)
        self.like = like
        self.derived = derived if derived is not None else {}
        self.parent = parent

    def __missing__(self, name: str) -> Value:
        fn = self.derived.get(name)
        if fn is not None:
            value = fn(self)
            self[name] = value
            return value
        if self.parent is not None:
            return self.parent[name]
        if name in LIBRARY:
            return LIBRARY[name]
        raise UsageError(f"no value for {name!r} while evaluating the model")

    def child(self, values: Mapping[str, Value]) -> Scope:
        """A scope with ``values`` added on top of this one (a function call's parameters)."""
        return Scope(values, like=self.like, parent=self)


def _constructor(name: str, args: list[Any], like: Tensor) -> Tensor:
    opts = {"device": like.device, "dtype": like.dtype}
    if name == "zeros":
        return torch.zeros(int(args[0]), **opts)
    if name == "ones":
        return torch.ones(int(args[0]), **opts)
    return torch.linspace(float(args[0]), float(args[1]), int(args[2]), **opts)


_CONSTRUCTORS = ("zeros", "ones", "linspace")

_OPS: dict[str, Callable[[Any, Any], Any]] = {
    "+": operator.add,
    "-": operator.sub,
    "*": operator.mul,
    "/": operator.truediv,
    "^": operator.pow,
}


def _stack(items: list[Any], like: Tensor) -> Tensor:
    """``[a, b, ...]`` as one tensor: numbers give a vector; with tensors among them, the items
    are broadcast and stacked on a new last axis (``[p, 1 - p]`` for a batch of ``p``)."""
    if all(isinstance(i, int | float) for i in items):
        return torch.tensor(items, device=like.device, dtype=like.dtype)
    ref = next(i for i in items if isinstance(i, Tensor))
    return torch.stack(torch.broadcast_tensors(*(_as_tensor_like(i, ref) for i in items)), -1)


def _index(base: Any, index: Any, rank: int | None) -> Any:
    """``base[index]``: the first of ``base``'s ``rank`` trailing event axes at a constant
    ``index`` (the batch axis is kept); else ``base``'s leading axis (a constant vector)."""
    if isinstance(index, Tensor):
        return base[index.long()]
    if rank and isinstance(base, Tensor):
        return base.select(-rank, int(index))
    return base[int(index)]


def _event_dims(x: Tensor, shape: tuple[Any, ...] | None) -> tuple[int, ...]:
    """The event axes of ``x``: its trailing ``len(shape)`` axes, or every axis but the batch
    axis 0 where the checker did not know the shape."""
    rank = len(shape) if shape is not None else x.dim() - 1
    return tuple(range(x.dim() - rank, x.dim()))


def reduce_sum(x: Tensor | float, shape: tuple[Any, ...] | None) -> Tensor | float:
    """sum(x) = Σ_i x_i over the event axes."""
    if not isinstance(x, Tensor):
        return x
    dims = _event_dims(x, shape)
    return x.sum(dims) if dims else x


def reduce_mean(x: Tensor | float, shape: tuple[Any, ...] | None) -> Tensor | float:
    """mean(x) = (1/n) Σ_i x_i over the n event coordinates."""
    if not isinstance(x, Tensor):
        return x
    dims = _event_dims(x, shape)
    return x.mean(dims) if dims else x


def reduce_norm(x: Tensor | float, shape: tuple[Any, ...] | None) -> Tensor | float:
    """norm(x) = (Σ_i x_i²)^(1/2) over the event axes (the Euclidean norm)."""
    if not isinstance(x, Tensor):
        return abs(x)
    dims = _event_dims(x, shape)
    return torch.linalg.vector_norm(x, dim=dims) if dims else x.abs()


def reduce_dot(x: Tensor | float, y: Tensor | float, shape: tuple[Any, ...] | None) -> Any:
    """dot(x, y) = Σ_i x_i y_i over the event axes."""
    return reduce_sum(x * y, shape)


_REDUCTIONS: dict[str, Callable[..., Any]] = {
    "sum": reduce_sum,
    "mean": reduce_mean,
    "norm": reduce_norm,
    "dot": reduce_dot,
}


def _compile_call(e: ir.Call) -> Compiled:
    args = [compile_expr(a) for a in e.args]
    func = e.func
    if func in _CONSTRUCTORS:
        return lambda s: _constructor(func, [a(s) for a in args], s.like)
    if e.kind == "reduction":
        reduce, shape = _REDUCTIONS[func], e.shape
        return lambda s: reduce(*[a(s) for a in args], shape)
    kwargs = [(k.name, compile_expr(k.value)) for k in e.kwargs]

    def function(s: Scope) -> Callable[..., Any]:
        fn = s[func]
        if not callable(fn):
            raise InternalError(f"{func!r} is called but is not a function")
        return fn

    if len(args) == 1 and not kwargs:  # the common ``net(x)``: no list, no dict per call
        (arg,) = args
        return lambda s: function(s)(arg(s))
    return lambda s: function(s)(*[a(s) for a in args], **{k: v(s) for k, v in kwargs})


def time_derivative(value: Callable[[Any], Any], t: Tensor | float, like: Tensor) -> Any:
    """dE/dt of ``value(t) = E(t)`` by autograd: ``E`` is evaluated at ``t`` made a leaf
    (per sample when ``t`` holds one time per sample: each output depends on its own ``t``,
    so the gradient of the sum is the elementwise derivative); the graph is kept, so a loss
    may differentiate through it."""
    leaf = t.detach() if isinstance(t, Tensor) else torch.tensor(float(t), dtype=like.dtype)
    leaf = leaf.to(like.device).requires_grad_(True)
    with torch.enable_grad():
        out = value(leaf)
        if not isinstance(out, Tensor) or not out.requires_grad:
            return torch.zeros_like(leaf)
        (grad,) = torch.autograd.grad(out.sum(), leaf, create_graph=True)
    return grad


def _compile_derivative(e: ir.Derivative) -> Compiled:
    operand, time = compile_expr(e.operand), e.time
    return lambda s: time_derivative(lambda t: operand(s.child({time: t})), s[time], s.like)


def compile_expr(e: ir.Expr) -> Compiled:
    """``e`` as a closure ``scope -> value`` (a tensor, a number, a string or a callable)."""
    if isinstance(e, ir.Num | ir.Str):
        value = e.value
        return lambda s: value
    if isinstance(e, ir.Name):
        name = e.id
        return lambda s: s[name]
    if isinstance(e, ir.BinOp):
        op, left, right = _OPS[e.op], compile_expr(e.left), compile_expr(e.right)
        return lambda s: op(left(s), right(s))
    if isinstance(e, ir.Neg):
        operand = compile_expr(e.operand)
        return lambda s: -operand(s)
    if isinstance(e, ir.List):
        items = [compile_expr(i) for i in e.items]
        return lambda s: _stack([i(s) for i in items], s.like)
    if isinstance(e, ir.Index):
        base, index, rank = compile_expr(e.base), compile_expr(e.index), e.rank
        return lambda s: _index(base(s), index(s), rank)
    if isinstance(e, ir.Call):
        return _compile_call(e)
    if isinstance(e, ir.Derivative):
        return _compile_derivative(e)
    if isinstance(e, ir.Quantize):  # the quantiser is bound in the scope, like a network
        operand = compile_expr(e.operand)
        return lambda s: s["quantize"](operand(s))
    raise InternalError(f"cannot evaluate {type(e).__name__}")


def evaluate(e: ir.Expr, scope: Scope) -> Any:
    """The value of ``e`` in ``scope`` (compiles ``e``; compile once to evaluate repeatedly)."""
    return compile_expr(e)(scope)


def let_function(let: ir.Let, scope: Scope) -> Callable[..., Any]:
    """``let f(a, b) = body`` as a Python function evaluating ``body`` with ``a, b`` bound."""
    body = compile_expr(let.value)

    def call(*args: Any) -> Any:
        if len(args) != len(let.params):
            raise InternalError(f"{let.name} takes {len(let.params)} arguments, got {len(args)}")
        return body(scope.child(dict(zip(let.params, args, strict=True))))

    return call
