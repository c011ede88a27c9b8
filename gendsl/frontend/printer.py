"""The canonical pretty-printer behind ``gendsl fmt``.

``format_program(parse(text))`` re-parses to an AST equal to ``parse(text)`` (spans aside), with
the fewest parentheses that keep the meaning.  ``format_source`` also keeps the comments: a
comment on its own line stays above the statement that follows it, a comment after a statement
stays at the end of that statement's line.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from gendsl.frontend import ast
from gendsl.frontend.parser import parse
from gendsl.source import SPAN_NONE
from gendsl.spec_text import INDENT, POWER, ExprPrinter, string_text

__all__ = ["format_expr", "format_program", "format_source", "format_statement"]


class _SyntaxPrinter(ExprPrinter):
    """The common expressions, and ``d(E)/dt`` as one term (the parser groups it: it binds like
    a unary minus)."""

    def power(self, e: Any) -> int:
        return POWER["neg"] if ast.is_derivative(e) else super().power(e)

    def expr(self, e: Any) -> str:
        if ast.is_derivative(e):
            return f"{self.expr(e.left)} / {self.expr(e.right)}"
        return super().expr(e)


_EXPRESSIONS = _SyntaxPrinter(ast)
_arguments = _EXPRESSIONS.arguments
_option = _EXPRESSIONS.option
_flow_items = _EXPRESSIONS.flow_items


def format_expr(e: ast.Expr) -> str:
    """An expression in canonical form, parenthesised only where precedence requires."""
    return _EXPRESSIONS.expr(e)



def _type(t: ast.TypeExpr) -> str:
    return f"{t.kind}[{_arguments(t.args, t.kwargs)}]"



def _given(s: ast.Sample) -> str:
    return f" | {', '.join(g.id for g in s.given)}" if s.given else ""


def _value(s: ast.Critic | ast.Energy) -> str:
    return f" = {format_expr(s.value)}" if s.value is not None else ""


def _params(params: tuple[str, ...]) -> str:
    return f"({', '.join(params)})" if params else ""


def _let(s: ast.Let) -> str:
    params = f"({', '.join(s.params)})" if s.params else ""
    return f"let {s.name}{params} = {format_expr(s.value)}"


def _sde(s: ast.SDE) -> str:
    return (
        f"sde {s.differential} = {format_expr(s.rhs)}, {s.time} in "
        f"[{format_expr(s.t0)}, {format_expr(s.t1)}]"
    )


def _chain(s: ast.Chain) -> str:
    return (
        f"chain {s.var}[{s.index}] ~ {format_expr(s.dist)}, {s.range_var} in "
        f"{format_expr(s.lo)}..{format_expr(s.hi)}"
    )


#: One-line statements: the statement's text without indentation.
_LINES: dict[type, Callable[[Any], str]] = {
    ast.Decl: lambda s: f"{s.role} {s.name} : {_type(s.type)}",
    ast.Use: lambda s: f"use {s.name} = {format_expr(s.source)}",
    ast.Let: _let,
    ast.Net: lambda s: f"net {s.name} = {format_expr(s.constructor)}",
    ast.Sample: lambda s: f"{s.target}{_given(s)} ~ {format_expr(s.dist)}",
    ast.Assign: lambda s: f"{s.target} = {format_expr(s.value)}",
    ast.SDE: _sde,
    ast.Chain: _chain,
    ast.Path: lambda s: f"path {s.target} = {format_expr(s.value)}",
    ast.Couple: lambda s: f"couple {s.left}, {s.right} by {_option(s.coupling)}",
    ast.Predict: lambda s: f"predict {s.kind} = {format_expr(s.value)}",
    ast.Critic: lambda s: f"critic {s.name}{_params(s.params)}{_value(s)}",
    ast.Energy: lambda s: f"energy {s.name}({', '.join(s.params)}){_value(s)}",
    ast.Guidance: lambda s: f"guidance {_option(s.option)}",
    ast.Loss: lambda s: f"loss {_option(s.option)}",
    ast.SamplerDecl: lambda s: f"sample with {_option(s.option)}",
}

#: Block statements: the head before ``{`` and the lines inside (at the given depth).
_BLOCKS: dict[type, Callable[[Any, int], tuple[str, list[str]]]] = {
    ast.Guide: lambda s, depth: ("guide", _body(s.body, depth)),
    ast.Flow: lambda s, depth: (f"flow {s.name}", _flow_items(s.body, depth)),
    ast.Train: lambda s, depth: (
        "train",
        [f"{INDENT * depth}{k.name} = {format_expr(k.value)}" for k in s.items],
    ),
}


def _statement(s: ast.Stmt, depth: int) -> list[str]:
    """A statement as lines (most statements are one line)."""
    pad = INDENT * depth
    line = _LINES.get(type(s))
    if line is not None:
        return [f"{pad}{line(s)}"]
    block = _BLOCKS.get(type(s))
    if block is None:
        raise TypeError(f"not a statement: {s!r}")
    head, inner = block(s, depth + 1)
    return [f"{pad}{head} {{", *inner, f"{pad}}}"]


def format_statement(s: ast.Stmt) -> str:
    """One statement in canonical form (several lines for blocks)."""
    return "\n".join(_statement(s, 0))


def _body(stmts: tuple[ast.Stmt, ...], depth: int) -> list[str]:
    return [line for s in stmts for line in _statement(s, depth)]


def format_program(program: ast.Program) -> str:
    """The whole program in canonical form (comments are not part of the AST)."""
    return _Printer(program, {}).text()


class _Printer:
    """Lays out a program; ``comments`` maps a line number to the comment text on it."""

    def __init__(self, program: ast.Program, comments: dict[int, str]):
        self.program = program
        self.comments = dict(comments)
        self.lines: list[str] = []

    def _leading(self, before_line: int, depth: int) -> None:
        for line in sorted(k for k in self.comments if k < before_line):
            self.lines.append(INDENT * depth + self.comments.pop(line))

    def _emit(self, node: ast.Node, lines: list[str], depth: int, *, header: bool = False) -> None:
        span = getattr(node, "span", SPAN_NONE)
        if span is SPAN_NONE:
            self.lines += lines
            return
        self._leading(span.line, depth)
        trailing = None
        if header:
            trailing = self.comments.pop(span.line, None)
        elif len(lines) == 1:
            trailing = self.comments.pop(span.end_line, None)
        self.lines += [*lines[:-1], lines[-1] + (f"  {trailing}" if trailing else "")]

    def _block(self, stmts: tuple[ast.Stmt, ...], depth: int) -> None:
        for s in stmts:
            if isinstance(s, ast.Guide) and s.span is not SPAN_NONE:
                self._leading(s.span.line, depth)
                self.lines.append(f"{INDENT * depth}guide {{")
                self._block(s.body, depth + 1)
                self.lines.append(f"{INDENT * depth}}}")
            else:
                self._emit(s, _statement(s, depth), depth)

    def text(self) -> str:
        for imp in self.program.imports:
            self._emit(imp, [f"import {string_text(imp.path)}"], 0)
        for i, model in enumerate(self.program.models):
            if self.lines or i:
                self.lines.append("")
            base = f" extends {model.base}" if model.base else ""
            self._emit(model, [f"model {model.name}{base} {{"], 0, header=True)
            self._block(model.body, 1)
            end = self._model_end(i)
            self._leading(end, 1)
            self.lines.append("}")
        self._leading(10**12, 0)
        return "\n".join(self.lines) + "\n"

    def _model_end(self, index: int) -> int:
        models = self.program.models
        if index + 1 < len(models) and models[index + 1].span is not SPAN_NONE:
            return models[index + 1].span.line
        return 10**12 if index + 1 == len(models) else 0


def _comments(text: str) -> dict[int, str]:
    """Line number -> the ``# comment`` on that line (a ``#`` inside a string is not one)."""
    found = {}
    for lineno, line in enumerate(text.splitlines(), start=1):
        in_string = False
        for col, ch in enumerate(line):
            if ch == '"' and (col == 0 or line[col - 1] != "\\"):
                in_string = not in_string
            elif ch == "#" and not in_string:
                found[lineno] = line[col:].rstrip()
                break
    return found


def format_source(text: str, name: str = "<string>") -> str:
    """Parse ``text`` and print it canonically, keeping its comments."""
    program = parse(text, name)
    return _Printer(program, _comments(text)).text()
