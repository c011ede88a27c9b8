"""IR expressions and statements as spec text.

Prints exactly what :mod:`gendsl.frontend.printer` prints for the syntax the IR came from
(the derivation texts, the cache keys and the golden diagnostics quote it), with the fewest
parentheses that keep the meaning; the sugar nodes print as written (``consistency(f(x_t, t))``,
``quantize(z)``, ``d(E) / dt``).
"""

from __future__ import annotations

from typing import Any

from gendsl.ir import nodes as ir
from gendsl.spec_text import POWER, ExprPrinter

__all__ = ["format_expr", "format_statement"]


class _IRPrinter(ExprPrinter):
    """The common expressions, and the sugar nodes as written (``d(E) / dt`` binds like a unary
    minus: the parser groups it)."""

    def power(self, e: Any) -> int:
        return POWER["neg"] if isinstance(e, ir.Derivative) else super().power(e)

    def other(self, e: Any) -> str:
        if isinstance(e, ir.Consistency):
            return f"consistency({self.arguments((e.net,), e.kwargs)})"
        if isinstance(e, ir.Quantize):
            return f"quantize({self.expr(e.operand)})"
        if isinstance(e, ir.Derivative):
            return f"d({self.expr(e.operand)}) / d{e.time}"
        return super().other(e)


_EXPRESSIONS = _IRPrinter(ir)
_arguments = _EXPRESSIONS.arguments
_option = _EXPRESSIONS.option
_flow_items = _EXPRESSIONS.flow_items


def format_expr(e: ir.Expr) -> str:
    """An expression in canonical form, parenthesised only where precedence requires."""
    return _EXPRESSIONS.expr(e)




def _optional(value: ir.Expr | None) -> str:
    return f" = {format_expr(value)}" if value is not None else ""


def _line(s: ir.Stmt) -> str:
    """A one-line statement."""
    if isinstance(s, ir.Let):
        params = f"({', '.join(s.params)})" if s.params else ""
        return f"let {s.name}{params} = {format_expr(s.value)}"
    if isinstance(s, ir.Assign):
        return f"{s.target} = {format_expr(s.value)}"
    if isinstance(s, ir.SDE):
        return (
            f"sde {s.differential} = {format_expr(s.rhs)}, {s.time} in "
            f"[{format_expr(s.t0)}, {format_expr(s.t1)}]"
        )
    if isinstance(s, ir.Chain):
        return (
            f"chain {s.var}[{s.index}] ~ {format_expr(s.dist)}, {s.range_var} in "
            f"{format_expr(s.lo)}..{format_expr(s.hi)}"
        )
    if isinstance(s, ir.Path):
        return f"path {s.target} = {format_expr(s.value)}"
    if isinstance(s, ir.Couple):
        return f"couple {s.left}, {s.right} by {_option(s.coupling)}"
    if isinstance(s, ir.Predict):
        return f"predict {s.kind} = {format_expr(s.value)}"
    if isinstance(s, ir.Critic):
        params = f"({', '.join(s.params)})" if s.params else ""
        return f"critic {s.name}{params}{_optional(s.value)}"
    if isinstance(s, ir.Energy):
        return f"energy {s.name}({', '.join(s.params)}){_optional(s.value)}"
    if isinstance(s, ir.Guidance):
        return f"guidance {_option(s.option)}"
    raise TypeError(f"not a statement: {s!r}")


def format_statement(s: ir.Stmt) -> str:
    """One statement in canonical form (several lines for a flow)."""
    if isinstance(s, ir.Flow):
        return "\n".join([f"flow {s.name} {{", *_flow_items(s.body, 1), "}"])
    return _line(s)
