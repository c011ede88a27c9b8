"""The spelling of spec text shared by the printers of the syntax tree
(:mod:`gendsl.frontend.printer`) and of the IR (:mod:`gendsl.ir.printer`): indentation, the
binding power of each operator, how numbers and strings are written, and
:class:`ExprPrinter`, which prints the expression nodes both trees have (``Num``, ``Str``,
``Name``, ``List``, ``Call``, ``Index``, ``Neg``, ``BinOp``, of the same fields).  Imports
neither tree: each printer hands over its node module."""

from __future__ import annotations

from types import ModuleType
from typing import Any

__all__ = ["ATOM", "INDENT", "POWER", "ExprPrinter", "number_text", "string_text", "wrap"]

INDENT = "  "

#: Binding power of each operator; ``^`` is right-associative, the others left-associative.
POWER = {"+": 1, "-": 1, "*": 2, "/": 2, "neg": 3, "^": 4}
#: Binding power of anything that needs no parentheses (names, numbers, calls).
ATOM = 5


def number_text(value: int | float) -> str:
    """``value`` as a spec writes it: an int as is, a float in the shortest text that reads back
    as the same float, always with a point or an exponent (``2.0``, ``5e-5``)."""
    if isinstance(value, int):
        return str(value)
    text = repr(value)
    if "e" in text:
        mantissa, exponent = text.split("e")
        return f"{mantissa}e{int(exponent)}"  # 5e-05 -> 5e-5
    return text if "." in text else text + ".0"


def string_text(value: str) -> str:
    """``value`` as a double-quoted string literal, with ``\\``, ``"``, newline and tab
    escaped."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return '"' + escaped.replace("\t", "\\t") + '"'


def wrap(text: str, needed: bool) -> str:
    """``text`` in parentheses when ``needed``."""
    return f"({text})" if needed else text


class ExprPrinter:
    """Expressions of the node module ``nodes`` in canonical form, parenthesised only where
    precedence requires.  A tree with further expression nodes overrides :meth:`power` (their
    binding power) and :meth:`other` (their text)."""

    def __init__(self, nodes: ModuleType) -> None:
        self.nodes = nodes

    def power(self, e: Any) -> int:
        """The binding power of ``e``'s outermost operator (:data:`ATOM` for none)."""
        if isinstance(e, self.nodes.BinOp):
            return POWER[e.op]
        if isinstance(e, self.nodes.Neg):
            return POWER["neg"]
        return ATOM

    def other(self, e: Any) -> str:
        """The text of an expression node the common ones do not cover."""
        raise TypeError(f"not an expression: {e!r}")

    def arguments(self, args: tuple[Any, ...], kwargs: tuple[Any, ...]) -> str:
        """``a, b, k = v``: positional arguments, then keyword arguments."""
        parts = [self.expr(a) for a in args] + [f"{k.name} = {self.expr(k.value)}" for k in kwargs]
        return ", ".join(parts)

    def option(self, o: Any) -> str:
        """A library option: ``name`` or ``name(args, k = v)``."""
        return (
            o.name if not (o.args or o.kwargs) else f"{o.name}({self.arguments(o.args, o.kwargs)})"
        )

    def flow_items(self, items: tuple[Any, ...], depth: int) -> list[str]:
        """A flow's body: one line per layer, ``repeat N { ... }`` blocks indented."""
        pad = INDENT * depth
        lines = []
        for item in items:
            if isinstance(item, self.nodes.Repeat):
                lines.append(f"{pad}repeat {item.count} {{")
                lines += self.flow_items(item.body, depth + 1)
                lines.append(f"{pad}}}")
            else:
                args = item.args or item.kwargs
                lines.append(
                    f"{pad}{item.name}"
                    + (f"({self.arguments(item.args, item.kwargs)})" if args else "")
                )
        return lines

    def expr(self, e: Any) -> str:
        """``e`` in canonical form."""
        n = self.nodes
        if isinstance(e, n.Num):
            return number_text(e.value)
        if isinstance(e, n.Str):
            return string_text(e.value)
        if isinstance(e, n.Name):
            return e.id
        if isinstance(e, n.List):
            return "[" + ", ".join(self.expr(i) for i in e.items) + "]"
        if isinstance(e, n.Call):
            return f"{e.func}({self.arguments(e.args, e.kwargs)})"
        if isinstance(e, n.Index):
            return f"{wrap(self.expr(e.base), self.power(e.base) < ATOM)}[{self.expr(e.index)}]"
        if isinstance(e, n.Neg):
            # -(a ^ b) prints as -a ^ b; -(a + b) needs its parentheses
            return "-" + wrap(self.expr(e.operand), self.power(e.operand) < POWER["neg"])
        if isinstance(e, n.BinOp):
            p = POWER[e.op]
            if e.op == "^":  # right-associative: base must bind tighter, exponent may be unary
                left = wrap(self.expr(e.left), self.power(e.left) <= p)
                right = wrap(self.expr(e.right), self.power(e.right) < POWER["neg"])
                return f"{left}^{right}"
            return self._chain(e, p)
        return self.other(e)

    def _chain(self, e: Any, p: int) -> str:
        """A left-associative chain ``a + b - c + ...`` (one precedence level), printed by a
        loop along its left spine: a flat sum of thousands of terms is a list, not a
        recursion."""
        tail: list[str] = []
        node = e
        while isinstance(node, self.nodes.BinOp) and node.op != "^" and POWER[node.op] == p:
            tail.append(f" {node.op} {wrap(self.expr(node.right), self.power(node.right) <= p)}")
            node = node.left
        return wrap(self.expr(node), self.power(node) < p) + "".join(reversed(tail))
