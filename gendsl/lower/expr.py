"""Evaluate spec expressions with torch.

An expression is evaluated in a :class:`Scope`: a mapping from names to tensors (variables, with
the batch on the leading axes), numbers (constants), or callables (networks, ``let`` functions).
Arithmetic broadcasts like torch; plain numbers stay Python numbers until they meet a tensor.
Derived variables (``h = dec(z)``) are evaluated on first use and memoised.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import Tensor

from gendsl.errors import InternalError, UsageError
from gendsl.frontend import ast

__all__ = ["LIBRARY", "Scope", "evaluate", "let_function"]

Value = Tensor | float | int | Callable[..., Any]


def _unary(torch_fn: Callable[[Tensor], Tensor], math_fn: Callable[[float], float]):
    def apply(x: Tensor | float) -> Tensor | float:
        return torch_fn(x) if isinstance(x, Tensor) else math_fn(x)

    return apply


def _softplus(x: float) -> float:
    return max(x, 0.0) + math.log1p(math.exp(-abs(x)))


def _sigmoid(x: float) -> float:
    return 0.5 * (1.0 + math.tanh(0.5 * x))


def _binary(torch_fn: Callable[[Tensor, Tensor], Tensor], py_fn: Callable[[float, float], float]):
    def apply(a: Tensor | float, b: Tensor | float) -> Tensor | float:
        if isinstance(a, Tensor) or isinstance(b, Tensor):
            ref = a if isinstance(a, Tensor) else b
            return torch_fn(
                torch.as_tensor(a, device=ref.device), torch.as_tensor(b, device=ref.device)
            )
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


class Scope(dict):
    """Names in scope during one evaluation.

    :param like: a tensor giving the device and dtype of constructed tensors (``zeros(n)``).
    :param derived: assignment targets and their expressions, evaluated lazily on first lookup.
    :param parent: an enclosing scope consulted for names this one lacks.
    """

    def __init__(
        self,
        values: Mapping[str, Value],
        *,
        like: Tensor,
        derived: Mapping[str, ast.Expr] | None = None,
        parent: Scope | None = None,
    ):
        super().__init__(values)
        self.like = like
        self.derived = dict(derived or {})
        self.parent = parent

    def __missing__(self, name: str) -> Value:
        if name in self.derived:
            value = evaluate(self.derived.pop(name), self)
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
    "+": lambda a, b: a + b,
    "-": lambda a, b: a - b,
    "*": lambda a, b: a * b,
    "/": lambda a, b: a / b,
    "^": lambda a, b: a**b,
}


def evaluate(e: ast.Expr, scope: Scope) -> Any:
    """The value of ``e`` in ``scope``: a tensor, a number, or a list of values."""
    if isinstance(e, ast.Num):
        return e.value
    if isinstance(e, ast.Name):
        return scope[e.id]
    if isinstance(e, ast.BinOp):
        return _OPS[e.op](evaluate(e.left, scope), evaluate(e.right, scope))
    if isinstance(e, ast.Neg):
        return -evaluate(e.operand, scope)
    if isinstance(e, ast.List):
        items = [evaluate(i, scope) for i in e.items]
        if all(isinstance(i, int | float) for i in items):
            return torch.tensor(items, device=scope.like.device, dtype=scope.like.dtype)
        return torch.stack([torch.as_tensor(i, device=scope.like.device) for i in items], -1)
    if isinstance(e, ast.Index):
        base, index = evaluate(e.base, scope), evaluate(e.index, scope)
        return base[index.long() if isinstance(index, Tensor) else int(index)]
    if isinstance(e, ast.Call):
        args = [evaluate(a, scope) for a in e.args]
        if e.func in _CONSTRUCTORS:
            return _constructor(e.func, args, scope.like)
        fn = scope[e.func]
        if not callable(fn):
            raise InternalError(f"{e.func!r} is called but is not a function")
        kwargs = {k.name: evaluate(k.value, scope) for k in e.kwargs}
        return fn(*args, **kwargs)
    if isinstance(e, ast.Str):
        return e.value
    raise InternalError(f"cannot evaluate {type(e).__name__}")


def let_function(let: ast.Let, scope: Scope) -> Callable[..., Any]:
    """``let f(a, b) = body`` as a Python function evaluating ``body`` with ``a, b`` bound."""

    def call(*args: Any) -> Any:
        if len(args) != len(let.params):
            raise InternalError(f"{let.name} takes {len(let.params)} arguments, got {len(args)}")
        return evaluate(let.value, scope.child(dict(zip(let.params, args, strict=True))))

    return call
