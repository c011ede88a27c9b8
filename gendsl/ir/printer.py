"""IR expressions and statements as spec text.

Prints exactly what :mod:`gendsl.frontend.printer` prints for the syntax the IR came from
(the derivation texts, the cache keys and the golden diagnostics quote it), with the fewest
parentheses that keep the meaning; the sugar nodes print as written (``consistency(f(x_t, t))``,
``quantize(z)``, ``d(E) / dt``).
"""

from __future__ import annotations

from gendsl.ir import nodes as ir

__all__ = ["format_expr", "format_statement"]

INDENT = "  "

# binding power of each operator; '^' is right-associative, the others left-associative
_POWER = {"+": 1, "-": 1, "*": 2, "/": 2, "neg": 3, "^": 4}
_ATOM = 5


def _number(value: int | float) -> str:
    if isinstance(value, int):
        return str(value)
    text = repr(value)  # the shortest text that reads back as the same float
    if "e" in text:
        mantissa, exponent = text.split("e")
        return f"{mantissa}e{int(exponent)}"  # 5e-05 -> 5e-5
    return text if "." in text else text + ".0"


def _string(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return '"' + escaped.replace("\t", "\\t") + '"'


def _power(e: ir.Expr) -> int:
    if isinstance(e, ir.BinOp):
        return _POWER[e.op]
    if isinstance(e, ir.Derivative):
        return _POWER["/"]
    if isinstance(e, ir.Neg):
        return _POWER["neg"]
    return _ATOM


def _wrap(text: str, needed: bool) -> str:
    return f"({text})" if needed else text


def _arguments(args: tuple[ir.Expr, ...], kwargs: tuple[ir.KwArg, ...]) -> str:
    parts = [format_expr(a) for a in args] + [f"{k.name} = {format_expr(k.value)}" for k in kwargs]
    return ", ".join(parts)


def _sugar(e: ir.Expr) -> str | None:
    if isinstance(e, ir.Consistency):
        return f"consistency({_arguments((e.net,), e.kwargs)})"
    if isinstance(e, ir.Quantize):
        return f"quantize({format_expr(e.operand)})"
    if isinstance(e, ir.Derivative):
        return f"d({format_expr(e.operand)}) / d{e.time}"
    return None


def format_expr(e: ir.Expr) -> str:
    """An expression in canonical form, parenthesised only where precedence requires."""
    if isinstance(e, ir.Num):
        return _number(e.value)
    if isinstance(e, ir.Str):
        return _string(e.value)
    if isinstance(e, ir.Name):
        return e.id
    if isinstance(e, ir.List):
        return "[" + ", ".join(format_expr(i) for i in e.items) + "]"
    if isinstance(e, ir.Call):
        return f"{e.func}({_arguments(e.args, e.kwargs)})"
    if isinstance(e, ir.Index):
        return f"{_wrap(format_expr(e.base), _power(e.base) < _ATOM)}[{format_expr(e.index)}]"
    if isinstance(e, ir.Neg):
        # -(a ^ b) prints as -a ^ b; -(a + b) needs its parentheses
        return "-" + _wrap(format_expr(e.operand), _power(e.operand) < _POWER["neg"])
    if isinstance(e, ir.BinOp):
        p = _POWER[e.op]
        if e.op == "^":  # right-associative: base must bind tighter, exponent may be unary
            left = _wrap(format_expr(e.left), _power(e.left) <= p)
            right = _wrap(format_expr(e.right), _power(e.right) < _POWER["neg"])
            return f"{left}^{right}"
        return _format_chain(e, p)
    text = _sugar(e)
    if text is None:
        raise TypeError(f"not an expression: {e!r}")
    return text


def _format_chain(e: ir.BinOp, p: int) -> str:
    """A left-associative chain ``a + b - c + ...`` (one precedence level), printed by a loop
    along its left spine: a flat sum of thousands of terms is a list, not a recursion."""
    tail: list[str] = []
    node: ir.Expr = e
    while isinstance(node, ir.BinOp) and node.op != "^" and _POWER[node.op] == p:
        tail.append(f" {node.op} {_wrap(format_expr(node.right), _power(node.right) <= p)}")
        node = node.left
    return _wrap(format_expr(node), _power(node) < p) + "".join(reversed(tail))


def _option(o: ir.Option) -> str:
    return o.name if not (o.args or o.kwargs) else f"{o.name}({_arguments(o.args, o.kwargs)})"


def _flow_items(items: tuple[ir.FlowItem, ...], depth: int) -> list[str]:
    pad = INDENT * depth
    lines = []
    for item in items:
        if isinstance(item, ir.Repeat):
            lines.append(f"{pad}repeat {item.count} {{")
            lines += _flow_items(item.body, depth + 1)
            lines.append(f"{pad}}}")
        else:
            args = f"({_arguments(item.args, item.kwargs)})" if item.args or item.kwargs else ""
            lines.append(f"{pad}{item.name}{args}")
    return lines


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
