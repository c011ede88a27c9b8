"""``let`` constants in options: ``let K = 6`` then ``Embedding(classes = K)``.

Before the passes run, every name in an option's arguments (a network's constructor, a flow
layer, the loss, the sampler, the guidance, the coupling, ``train { }``) that names a
number-valued ``let`` without parameters is replaced by that number, written at the name's
place, so the option tables check it like a number written there and the IR holds the number.
A let is number-valued when its value is a number or ``+ - * /`` and unary minus of numbers and
other such lets (``let H = 2 * K``).
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

from gendsl.frontend import ast

__all__ = ["constants", "substitute"]

_OPS: dict[str, Callable[[Any, Any], Any]] = {
    "+": operator.add,
    "-": operator.sub,
    "*": operator.mul,
    "/": operator.truediv,
}


def _number(e: ast.Expr, lets: Mapping[str, ast.Let], seen: frozenset[str]) -> Any:
    """The number ``e`` stands for, or ``None``."""
    if isinstance(e, ast.Num):
        return e.value
    if isinstance(e, ast.Neg):
        n = _number(e.operand, lets, seen)
        return -n if n is not None else None
    if isinstance(e, ast.Name):
        let = lets.get(e.id)
        if let is None or let.params or e.id in seen:
            return None
        return _number(let.value, lets, seen | {e.id})
    if isinstance(e, ast.BinOp) and e.op in _OPS:
        left, right = _number(e.left, lets, seen), _number(e.right, lets, seen)
        if left is None or right is None or (e.op == "/" and right == 0):
            return None
        return _OPS[e.op](left, right)
    return None


def constants(body: tuple[ast.Stmt, ...]) -> dict[str, int | float]:
    """The number-valued lets of a model body, by name."""
    lets = {s.name: s for s in body if isinstance(s, ast.Let)}
    values = {n: _number(ast.Name(n), lets, frozenset()) for n in lets}
    return {n: v for n, v in values.items() if v is not None}


def _value(e: ast.Expr, values: Mapping[str, int | float]) -> ast.Expr:
    if isinstance(e, ast.Name) and e.id in values:
        return ast.Num(values[e.id], e.span)
    if isinstance(e, ast.List):
        return replace(e, items=tuple(_value(i, values) for i in e.items))
    if isinstance(e, ast.Call):
        return replace(e, args=_args(e.args, values), kwargs=_kwargs(e.kwargs, values))
    return e


def _args(args: tuple[ast.Expr, ...], values: Mapping[str, int | float]) -> tuple[ast.Expr, ...]:
    return tuple(_value(a, values) for a in args)


def _kwargs(kwargs: tuple[ast.KwArg, ...], values: Mapping[str, int | float]) -> Any:
    return tuple(replace(k, value=_value(k.value, values)) for k in kwargs)


def _option(o: Any, values: Mapping[str, int | float]) -> Any:
    return replace(o, args=_args(o.args, values), kwargs=_kwargs(o.kwargs, values))


def _flow_item(item: ast.FlowItem, values: Mapping[str, int | float]) -> ast.FlowItem:
    if isinstance(item, ast.Repeat):
        return replace(item, body=tuple(_flow_item(i, values) for i in item.body))
    return _option(item, values)


def _statement(s: ast.Stmt, values: Mapping[str, int | float]) -> ast.Stmt:
    if isinstance(s, ast.Net):
        return replace(s, constructor=_option(s.constructor, values))
    if isinstance(s, ast.Flow):
        return replace(s, body=tuple(_flow_item(i, values) for i in s.body))
    if isinstance(s, ast.Loss | ast.SamplerDecl | ast.Guidance):
        return replace(s, option=_option(s.option, values))
    if isinstance(s, ast.Couple):
        return replace(s, coupling=_option(s.coupling, values))
    if isinstance(s, ast.Train):
        return replace(s, items=_kwargs(s.items, values))
    return s


def substitute(model: ast.Model) -> ast.Model:
    """``model`` with its number-valued lets written into its options (module docstring)."""
    values = constants(model.body)
    if not values:
        return model
    return replace(model, body=tuple(_statement(s, values) for s in model.body))
