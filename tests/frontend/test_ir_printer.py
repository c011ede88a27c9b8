"""The IR prints exactly as the syntax it came from (derivation texts and diagnostics quote it).

Generated expressions and statements (the round-trip strategies of ``test_properties``) are
converted to IR and printed by :mod:`gendsl.ir.printer`; the text must equal what
:mod:`gendsl.frontend.printer` prints for the syntax tree, sugar (``d(E)/dX``) included.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from test_properties import exprs, names, numbers

from gendsl import ir
from gendsl.analysis.to_ir import expr_to_ir, statement_to_ir
from gendsl.frontend import ast
from gendsl.frontend.printer import format_expr, format_statement

# a checked option's arguments are plain values (numbers, words)
checked_kwargs = st.lists(
    st.builds(ast.KwArg, names, st.one_of(numbers.map(ast.Num), names.map(ast.Name))), max_size=2
).map(tuple)
statements = st.one_of(
    st.builds(ast.Let, names, st.lists(names, max_size=2).map(tuple), exprs),
    st.builds(ast.Assign, names, exprs),
    st.builds(ast.Predict, names, exprs),
    st.builds(ast.Path, names, exprs),
    st.builds(ast.Critic, names, st.one_of(st.none(), exprs)),
    st.builds(ast.Energy, names, st.lists(names, max_size=2).map(tuple), st.none() | exprs),
    st.builds(ast.Guidance, st.builds(ast.Option, names, st.just(()), checked_kwargs)),
    st.builds(ast.Couple, names, names, st.builds(ast.Option, st.just("independent"))),
    st.builds(ast.SDE, names, exprs, names, exprs, exprs),
)


@settings(max_examples=150, deadline=None)
@given(exprs)
def test_an_expression_prints_as_its_syntax(e: ast.Expr):
    assert ir.format_expr(expr_to_ir(e)) == format_expr(e)


@settings(max_examples=80, deadline=None)
@given(statements)
def test_a_statement_prints_as_its_syntax(s: ast.Stmt):
    assert ir.format_statement(statement_to_ir(s)) == format_statement(s)


def test_sugar_prints_as_written():
    d = ast.BinOp("/", ast.Call("d", (ast.Name("u"),)), ast.Name("dt"))
    cases = [
        ast.BinOp("*", ast.Name("a"), d),
        ast.BinOp("*", d, ast.Name("b")),
        ast.Neg(d),
        ast.BinOp("^", d, ast.Num(2)),
        ast.Call("consistency", (ast.Name("f"),), (ast.KwArg("sigma_data", ast.Num(0.5)),)),
        ast.Call("quantize", (ast.Call("enc", (ast.Name("x"),)),)),
    ]
    for e in cases:
        converted = expr_to_ir(e)
        assert ir.format_expr(converted) == format_expr(e)
    assert isinstance(expr_to_ir(d), ir.Derivative)
    assert isinstance(expr_to_ir(cases[4]), ir.Consistency)
    assert isinstance(expr_to_ir(cases[5]), ir.Quantize)
