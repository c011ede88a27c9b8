"""Symbolic results remembered on disk, by the canonical text of their input.

Simplifying and integrating a schedule costs sympy seconds; the result depends only on the
input expression.  :func:`remembered` keys a computation by ``sp.srepr`` of its inputs (sympy's
canonical text of an expression tree, assumptions included) and keeps the result, as the same
kind of text (arguments in the tree's order), in ``$GENDSL_CACHE/symbolic.json``
(``~/.cache/gendsl`` by default).  Reading it back
parses that text with Python's :mod:`ast` and builds the tree from a fixed list of sympy
constructors (unevaluated, so the tree is the one stored): no ``eval``, no pickle, nothing but
arithmetic and elementary functions.  A result is only stored when it reads back to an equal
tree, so a cached run prints and computes exactly what a cold one does.
"""

from __future__ import annotations

import ast
import hashlib
from collections.abc import Callable

import sympy as sp

from gendsl.cache import read_json, write_json
from gendsl.symbolic.expr import symbol

__all__ = ["STORE_VERSION", "remembered"]

#: Bump when a cached computation changes, so that old entries stop counting.
STORE_VERSION = "1"
_FILE = "symbolic.json"
_SIZE = 4096
_NONE = "none"

_loaded: dict[str, str] | None = None


def _entries() -> dict[str, str]:
    global _loaded
    if _loaded is None:
        value = read_json(_FILE)
        _loaded = {str(k): str(v) for k, v in value.items()} if isinstance(value, dict) else {}
    return _loaded


def _save(key: str, text: str) -> None:
    entries = _entries()
    entries[key] = text
    while len(entries) > _SIZE:
        entries.pop(next(iter(entries)))
    write_json(_FILE, entries)


#: The constructors a stored tree may use (``srepr`` names) and whether they take ``evaluate``.
_CONSTRUCTORS = {
    **dict.fromkeys(("Add", "Mul", "Pow", "exp", "log", "sin", "cos", "tan", "tanh"), True),
    **dict.fromkeys(("Abs", "Max", "Min"), True),
    **dict.fromkeys(("Integer", "Rational", "Float", "Symbol"), False),
}
_CONSTANTS = {"pi": sp.pi, "E": sp.E, "oo": sp.oo, "zoo": sp.zoo, "nan": sp.nan}


class _Unreadable(ValueError):
    """A stored text outside the small language :func:`_build` reads."""


def _build(node: ast.expr) -> object:
    """A sympy tree from the :mod:`ast` of its ``srepr`` text (module docstring)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, int | str | bool):
        return node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        value = _build(node.operand)
        if isinstance(value, int) and not isinstance(value, bool):
            return -value
    if isinstance(node, ast.Name) and node.id in _CONSTANTS:
        return _CONSTANTS[node.id]
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id in _CONSTRUCTORS
    ):
        args = [_build(a) for a in node.args]
        kwargs = {k.arg: _build(k.value) for k in node.keywords if k.arg is not None}
        if _CONSTRUCTORS[node.func.id]:
            kwargs["evaluate"] = False
        return getattr(sp, node.func.id)(*args, **kwargs)
    raise _Unreadable(ast.dump(node)[:80])


def _read(text: str) -> sp.Expr | None:
    if text == _NONE:
        return None
    try:
        value = _build(ast.parse(text, mode="eval").body)
    except (SyntaxError, TypeError, ValueError, RecursionError) as err:
        raise _Unreadable(str(err)) from None
    if not isinstance(value, sp.Expr):
        raise _Unreadable(text[:80])
    return value


def _write(e: sp.Basic) -> str:
    """``srepr`` with the arguments in the tree's own order (``srepr`` sorts them for print)."""
    if not e.args or isinstance(e, sp.Symbol | sp.Number):
        return sp.srepr(e)
    return f"{type(e).__name__}({', '.join(_write(a) for a in e.args)})"


def _text(value: sp.Expr | None) -> str | None:
    """The stored form of ``value``, or None when it does not read back to an equal tree."""
    if value is None:
        return _NONE
    text = _write(value)
    try:
        back = _read(text)
    except _Unreadable:
        return None
    return text if back == value else None


def remembered(
    kind: str,
    inputs: tuple[sp.Expr, ...],
    compute: Callable[[], sp.Expr | None],
    *,
    time: str = "t",
) -> sp.Expr | None:
    """``compute()``, or its result stored for the same ``kind`` and ``inputs`` (module
    docstring).  Inputs with free symbols other than the time are computed, not stored."""
    if any(s != symbol(time) for e in inputs for s in e.free_symbols):
        return compute()
    canonical = "\n".join([STORE_VERSION, kind, time, *(sp.srepr(e) for e in inputs)])
    key = hashlib.sha256(canonical.encode()).hexdigest()
    stored = _entries().get(key)
    if stored is not None:
        try:
            return _read(stored)
        except _Unreadable:
            pass  # a damaged entry: compute it again
    value = compute()
    text = _text(value)
    if text is not None:
        _save(key, text)
    return value
