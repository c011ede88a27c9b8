"""The torch evaluator of spec expressions against numpy formulas, Python's own precedence, and
hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from gendsl import ir
from gendsl.analysis.to_ir import statement_to_ir
from gendsl.errors import InternalError, UsageError
from gendsl.frontend import ast
from gendsl.frontend.parser import parse
from gendsl.lower.expr import LIBRARY, Scope, compile_expr, evaluate, let_function

LIKE = torch.zeros((), dtype=torch.float64)


def lets(text: str) -> dict[str, ir.Let]:
    """The lets of ``model m { text }``, by name, as IR."""
    (model,) = parse(f"model m {{\n{text}\n}}", "<test>").models
    return {s.name: statement_to_ir(s) for s in model.body if isinstance(s, ast.Let)}


def expr(text: str) -> ir.Expr:
    return lets(f"let e = {text}")["e"].value


def scope_with(values: dict, text: str = "") -> Scope:
    """A scope holding ``values`` and the lets of ``text`` (functions bound to the scope)."""
    scope = Scope(values, like=LIKE)
    for name, let in lets(text).items():
        scope[name] = let_function(let, scope) if let.params else evaluate(let.value, scope)
    return scope


# ------------------------------------------------------------------ library functions

REFERENCE = {
    "exp": np.exp,
    "log": np.log,
    "sqrt": np.sqrt,
    "sin": np.sin,
    "cos": np.cos,
    "tan": np.tan,
    "tanh": np.tanh,
    "abs": np.abs,
    "relu": lambda x: np.maximum(x, 0.0),
    "softplus": lambda x: np.logaddexp(0.0, x),
    "sigmoid": lambda x: 1.0 / (1.0 + np.exp(-x)),
}


def test_the_library_table_is_covered():
    assert set(LIBRARY) == {*REFERENCE, "min", "max", "pi"}


@pytest.mark.parametrize("name", sorted(REFERENCE))
def test_library_function_on_tensors_and_numbers_matches_numpy(name):
    xs = np.array([0.05, 0.3, 1.0, 1.4, 2.5])
    if name not in ("log", "sqrt"):
        xs = xs * np.array([-1, 1, -1, 1, 1])
    u = torch.tensor(xs, dtype=torch.float64)
    out = evaluate(expr(f"{name}(u)"), Scope({"u": u}, like=LIKE))
    assert isinstance(out, torch.Tensor) and out.dtype == torch.float64
    np.testing.assert_allclose(out.numpy(), REFERENCE[name](xs), rtol=1e-12, atol=1e-14)
    for x in xs:
        number = evaluate(expr(f"{name}(u)"), Scope({"u": float(x)}, like=LIKE))
        assert isinstance(number, float)  # numbers stay Python numbers
        assert number == pytest.approx(float(REFERENCE[name](x)), rel=1e-12, abs=1e-14)


def test_softplus_and_sigmoid_of_large_numbers_do_not_overflow():
    for x, softplus, sigmoid in ((800.0, 800.0, 1.0), (-800.0, 0.0, 0.0)):
        scope = Scope({"u": x}, like=LIKE)
        assert evaluate(expr("softplus(u)"), scope) == pytest.approx(softplus, abs=1e-300)
        assert evaluate(expr("sigmoid(u)"), scope) == pytest.approx(sigmoid, abs=1e-300)


def test_min_max_mix_numbers_and_tensors_and_keep_the_dtype():
    u = torch.tensor([-1.0, 0.5, 3.0], dtype=torch.float64)
    scope = Scope({"u": u}, like=LIKE)
    low = evaluate(expr("min(u, 0.75)"), scope)
    high = evaluate(expr("max(0.75, u)"), scope)
    assert low.dtype == high.dtype == torch.float64
    assert low.tolist() == [-1.0, 0.5, 0.75]
    assert high.tolist() == [0.75, 0.75, 3.0]
    assert evaluate(expr("min(2, 3) + max(2, 3) + pi"), scope) == pytest.approx(5 + math.pi)


# ------------------------------------------------------------------ operators


@st.composite
def expressions(draw, depth: int = 3) -> str:
    """Random expression text over a, b, c and literals, without redundant parentheses, so the
    grammar's precedence and associativity decide its meaning (``^`` takes an integer power so
    negative bases stay real)."""
    if depth == 0 or draw(st.integers(0, 3)) == 0:
        atom = draw(st.sampled_from(["a", "b", "c", "2", "0.5", "3"]))
        return f"-{atom}" if draw(st.booleans()) and draw(st.booleans()) else atom
    op = draw(st.sampled_from(["+", "-", "*", "/", "^"]))
    left = draw(expressions(depth - 1))
    if op == "^":
        base = left if draw(st.booleans()) else f"({left})"
        # ``^`` is right-associative: after an unparenthesised power the new one becomes part of
        # its exponent (``x ^ 2 ^ -1`` is x ^ 0.5), so only a positive power keeps it an integer,
        # and only 2 keeps it small: ``2 ^ 2 ^ 3 ^ 3`` is 2^(2^27), an integer Python computes
        # exactly and torch cannot hold; with 2 the largest tower here is 3 ^ 3 ^ 2 ^ 2 = 3^81
        tower = base == left and "^" in left
        power = draw(st.sampled_from(["2"] if tower else ["2", "3", "-1", "-2"]))
        return f"{base} ^ {power}"
    right = draw(expressions(depth - 1))
    if draw(st.integers(0, 3)) == 0:
        right = f"({right})"
    return f"{left} {op} {right}"


@settings(max_examples=150, deadline=None)
@given(expressions())
def test_precedence_and_associativity_match_python(text):
    values = {"a": 1.3, "b": -0.7, "c": 2.1}
    tensors = {k: torch.tensor([v, 2 * v], dtype=torch.float64) for k, v in values.items()}
    try:
        python = eval(text.replace("^", "**"), {}, dict(tensors))  # our own strings
    except ZeroDivisionError:  # literals only: both divide Python numbers by zero
        with pytest.raises(ZeroDivisionError):
            evaluate(expr(text), Scope(tensors, like=LIKE))
        return
    ours = evaluate(expr(text), Scope(tensors, like=LIKE))
    torch.testing.assert_close(
        torch.as_tensor(ours, dtype=torch.float64),
        torch.as_tensor(python, dtype=torch.float64),
        equal_nan=True,
    )


def test_unary_minus_binds_looser_than_power_and_power_is_right_associative():
    scope = Scope({"a": 2.0}, like=LIKE)
    assert evaluate(expr("-a ^ 2"), scope) == -4.0
    assert evaluate(expr("2 ^ 3 ^ 2"), scope) == 2**9
    assert evaluate(expr("a - 1 - 1"), scope) == 0.0
    assert evaluate(expr("8 / a / 2"), scope) == 2.0


# ------------------------------------------------------------------ lets, schedules, batches


def test_let_functions_bind_parameters_and_see_outer_lets():
    scope = scope_with({}, "let s = 2\nlet f(t) = s * t ^ 2\nlet g(a, b) = f(a) - b")
    assert scope["g"](3, 1) == 17
    t = torch.tensor([0.0, 1.0, 2.0], dtype=torch.float64)
    torch.testing.assert_close(scope["f"](t), 2 * t**2)
    with pytest.raises(InternalError, match="g takes 2 arguments, got 1"):
        scope["g"](3)


def test_a_linspace_schedule_is_indexed_by_numbers_and_tensors():
    scope = scope_with({}, "let beta = linspace(0.1, 0.5, 5)\nlet z = zeros(3)\nlet o = ones(2)")
    assert scope["beta"].dtype == torch.float64
    assert scope["z"].tolist() == [0.0, 0.0, 0.0] and scope["o"].tolist() == [1.0, 1.0]
    assert float(evaluate(expr("beta[2]"), scope)) == pytest.approx(0.3)
    k = torch.tensor([4, 0, 2])
    picked = evaluate(expr("sqrt(1 - beta[k])"), scope.child({"k": k}))
    torch.testing.assert_close(picked, torch.sqrt(1 - torch.tensor([0.5, 0.1, 0.3]).double()))
    float_k = evaluate(expr("beta[k]"), scope.child({"k": k.double()}))
    torch.testing.assert_close(float_k, torch.tensor([0.5, 0.1, 0.3], dtype=torch.float64))


def test_arithmetic_broadcasts_over_the_batch():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(4, 3, generator=g, dtype=torch.float64)
    p = torch.rand(4, generator=g, dtype=torch.float64)
    scope = scope_with({"x": x, "p": p}, "let w = [1, 2, 3]")
    torch.testing.assert_close(evaluate(expr("x * w + 1"), scope), x * x.new_tensor([1, 2, 3]) + 1)
    stacked = evaluate(expr("[p, 1 - p]"), scope)
    torch.testing.assert_close(stacked, torch.stack([p, 1 - p], -1))
    mixed = evaluate(expr("[p, 0.5]"), scope)
    assert mixed.shape == (4, 2) and mixed.dtype == torch.float64
    torch.testing.assert_close(mixed[:, 1], torch.full((4,), 0.5, dtype=torch.float64))


def test_derived_values_are_evaluated_on_first_use_and_memoised():
    calls = []

    def net(x):
        calls.append(x)
        return 2 * x

    derived = {"h": compile_expr(expr("net(x) + 1"))}
    scope = Scope({"net": net, "x": torch.ones(2)}, like=LIKE, derived=derived)
    assert calls == []
    first = evaluate(expr("h * h"), scope)
    assert first.tolist() == [9.0, 9.0] and len(calls) == 1
    other = Scope({"net": net, "x": torch.zeros(2)}, like=LIKE, derived=derived)
    assert other["h"].tolist() == [1.0, 1.0] and len(calls) == 2  # one mapping, two scopes


def test_a_compiled_expression_is_reused_across_scopes():
    fn = compile_expr(expr("a * b + 1"))
    assert fn(Scope({"a": 2, "b": 3}, like=LIKE)) == 7
    assert fn(Scope({"a": 0.5, "b": 4}, like=LIKE)) == 3.0


def test_kwargs_and_strings_reach_the_callee():
    seen = {}

    def f(x, *, mode):
        seen.update(x=x, mode=mode)
        return x

    assert evaluate(expr('f(3, mode = "fast")'), Scope({"f": f}, like=LIKE)) == 3
    assert seen == {"x": 3, "mode": "fast"}


# ------------------------------------------------------------------ errors


def test_an_unbound_name_is_a_usage_error_quoting_it():
    with pytest.raises(UsageError, match="no value for 'ghost'"):
        evaluate(expr("1 + ghost"), Scope({}, like=LIKE))


def test_calling_a_value_that_is_not_a_function_is_an_internal_error():
    with pytest.raises(InternalError, match="'u' is called but is not a function"):
        evaluate(expr("u(1)"), Scope({"u": 2.0}, like=LIKE))


def test_an_unknown_node_cannot_be_compiled():
    with pytest.raises(InternalError, match="cannot evaluate KwArg"):
        compile_expr(ir.KwArg("k", ir.Num(1)))
