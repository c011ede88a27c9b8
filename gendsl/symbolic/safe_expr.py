"""Stored closed forms read back as functions of time, without sympy and without ``eval``.

A closed form is kept as Python expression text (sympy's ``str`` of the expression with its
numbers as floats: ``(19.9*t + 0.1)**0.5*exp(-0.05*t - 9.95*t**2)``).  :func:`compile_expr` walks
the :mod:`ast` of that text and accepts only numbers, the time symbol, ``+ - * / **``, unary
``-``/``+`` and one-argument calls of the functions of a fixed table (the caller's: torch or
numpy); anything else is refused with :class:`Unreadable` before anything runs.  Numbers are
read as floats, so no integer power can grow without bound.  This module imports neither sympy
nor torch.
"""

from __future__ import annotations

import ast
import operator
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["FUNCTIONS", "MAX_LENGTH", "Unreadable", "check_expr", "compile_expr"]

#: The functions a stored closed form may call (sympy's names).
FUNCTIONS = (
    *("sqrt", "exp", "log", "sin", "cos", "tan", "tanh", "sinh", "cosh"),
    *("atan", "asin", "acos", "asinh", "acosh", "atanh", "Abs", "erf", "erfc"),
)

#: The longest text read back (a longer one is recomputed).
MAX_LENGTH = 20000

_BINARY: dict[type, Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.Pow: operator.pow,
}

Node = Callable[[Any], Any]


class Unreadable(ValueError):
    """A stored text outside the small language :func:`compile_expr` reads."""


def _constant(value: float) -> Node:
    return lambda t: value


def _binary(op: Callable[[Any, Any], Any], left: Node, right: Node) -> Node:
    return lambda t: op(left(t), right(t))


def _call(fn: Callable[[Any], Any], arg: Node, lift: Callable[[Any, Any], Any]) -> Node:
    return lambda t: fn(lift(arg(t), t))


def _node(node: ast.expr, table: Mapping[str, Callable[[Any], Any]], var: str, lift: Any) -> Node:
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        return _constant(float(node.value))
    if isinstance(node, ast.Name) and node.id == var:
        return lambda t: t
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
        inner = _node(node.operand, table, var, lift)
        return (lambda t: -inner(t)) if isinstance(node.op, ast.USub) else inner
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = _node(node.left, table, var, lift), _node(node.right, table, var, lift)
        return _binary(_BINARY[type(node.op)], left, right)
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id in table
        and len(node.args) == 1
        and not node.keywords
    ):
        return _call(table[node.func.id], _node(node.args[0], table, var, lift), lift)
    raise Unreadable(f"not a stored closed form: {ast.dump(node)[:80]}")


def compile_expr(
    text: str,
    table: Mapping[str, Callable[[Any], Any]],
    *,
    var: str = "t",
    lift: Callable[[Any, Any], Any] = lambda value, t: value,
) -> Callable[[Any], Any]:
    """The function ``t ↦ text`` built from ``table`` (module docstring), or :class:`Unreadable`.

    ``lift(value, t)`` turns a constant argument of a function into the array type of ``t``
    (``sqrt(2.0)`` must reach ``torch.sqrt`` as a tensor)."""
    if not isinstance(text, str) or len(text) > MAX_LENGTH:
        raise Unreadable("not a stored closed form: too long or not text")
    try:
        tree = ast.parse(text, mode="eval")
        return _node(tree.body, {k: v for k, v in table.items() if k in FUNCTIONS}, var, lift)
    except (SyntaxError, ValueError, RecursionError, MemoryError) as err:
        if isinstance(err, Unreadable):
            raise
        raise Unreadable(f"not a stored closed form: {err}") from None


def _refuse(value: Any) -> Any:
    raise Unreadable("a checked text is not for evaluation")


def check_expr(text: str, *, var: str = "t") -> bool:
    """Whether ``text`` reads as a stored closed form (nothing is evaluated)."""
    try:
        compile_expr(text, dict.fromkeys(FUNCTIONS, _refuse), var=var)
    except Unreadable:
        return False
    return True
