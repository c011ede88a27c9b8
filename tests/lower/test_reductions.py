"""Per-sample reductions, coordinate indexing, time derivatives and let constants in options:
the torch values against numpy and closed forms, the IR the checker builds, the grouping of
``a * d(E)/dt``, and one CLI training run of a model using all of them."""

from __future__ import annotations

import json

import numpy as np
import pytest
import sympy as sp
import torch

import gendsl
from gendsl import ir
from gendsl.cli import main
from gendsl.errors import SpecError
from gendsl.frontend import ast
from gendsl.frontend.parser import parse
from gendsl.frontend.printer import format_expr
from gendsl.lower.expr import Scope, compile_expr, let_function
from gendsl.symbolic.expr import symbol, to_sympy

EBM = """
model well {
  data x : real[2]
  let H = 8
  let S = 2 * H
  net E = MLP(hidden = [S, H])
  energy U(x) = 0.5 * sum(x^2) + E(x) + 0.1 * norm(x) - 0.01 * dot(x, x) + mean(x) + x[1]
  loss contrastive_divergence(sampler = langevin(steps = 3, step = 0.01), buffer = 64)
  sample with langevin(steps = 3, step = 0.01)
  train { steps = H }
}
"""


def _energy_value(x: torch.Tensor) -> torch.Tensor:
    """The energy's expression with E(x) = 0, evaluated by the compiled IR."""
    checked = gendsl.check(EBM)
    assert checked.energy is not None
    scope = Scope({"x": x, "E": lambda v: torch.zeros(v.shape[0])}, like=x)
    return compile_expr(checked.energy.value)(scope)


def test_reductions_and_indexing_act_per_sample():
    x = np.random.default_rng(0).normal(size=(5, 2))
    got = _energy_value(torch.tensor(x)).numpy()
    want = (
        0.5 * (x**2).sum(1)
        + 0.1 * np.sqrt((x**2).sum(1))
        - 0.01 * np.einsum("bi,bi->b", x, x)
        + x.mean(1)
        + x[:, 1]
    )
    assert got.shape == (5,)
    np.testing.assert_allclose(got, want, rtol=1e-12)


def test_the_ir_records_the_reduced_axes_and_the_index_rank():
    checked = gendsl.check(EBM)
    nodes = list(ir.walk(checked.energy.value))
    reductions = {
        n.func: n.shape for n in nodes if isinstance(n, ir.Call) and n.kind == "reduction"
    }
    assert reductions == {"sum": (2,), "norm": (2,), "dot": (2,), "mean": (2,)}
    (index,) = [n for n in nodes if isinstance(n, ir.Index)]
    assert index.rank == 1


def test_let_constants_reach_the_ir_as_numbers():
    checked = gendsl.check(EBM)
    assert checked.nets["E"].options["hidden"] == [16, 8]
    assert checked.train["steps"] == 8


def test_embedding_classes_from_a_let_constant_trains_from_the_cli(tmp_path):
    spec = tmp_path / "mixture.gen"
    spec.write_text(
        """
model mixture {
  data x : real[2]
  let K = 3
  latent c : label[K]
  net means = Embedding(classes = K)
  c ~ Categorical(logits = zeros(K))
  x | c ~ Normal(means(c), 0.5)
  loss elbo(enumerate = [c])
}
"""
    )
    checked = gendsl.check(str(spec))
    assert checked.nets["means"].options["classes"] == 3
    argv = ["train", str(spec), "--data", "moons", "--steps", "2", "--batch-size", "16"]
    assert main([*argv, "--out", str(tmp_path / "run")]) == 0


def _let_value(text: str) -> ast.Expr:
    (model,) = parse(f"model m {{\n  let f(t) = {text}\n}}", "<t>").models
    (let,) = model.body
    return let.value


@pytest.mark.parametrize(
    ("text", "printed"),
    [
        ("0.5 * d(t^2)/dt", "0.5 * d(t^2) / dt"),
        ("-d(t)/dt", "-d(t) / dt"),
        ("a / d(t)/dt * 3", "a / d(t) / dt * 3"),
        ("(d(t)/dt)^2", "(d(t) / dt)^2"),
    ],
)
def test_a_time_derivative_groups_as_one_term(text, printed):
    e = _let_value(text)
    assert format_expr(e) == printed
    assert _let_value(printed) == e  # the printed form reads back as the same tree


VP_BY_DERIVATIVE = """
model vp {
  data x : real[2]
  let log_alpha(t) = -0.5 * (0.1 * t + 9.95 * t^2)
  let beta(t) = -2 * d(log_alpha(t))/dt
  let half(t) = 0.5 * d(t^3)/dt
  net eps = MLP(hidden = [8])
  sde dx = -0.5 * beta(t) * x * dt + sqrt(beta(t)) * dw, t in [0, 1]
  predict eps = eps(x_t, t)
  loss dsm
}
"""


def test_d_of_e_over_dt_is_differentiated_by_autograd():
    checked = gendsl.check(VP_BY_DERIVATIVE)
    t = torch.linspace(0, 1, 7, dtype=torch.float64)
    scope = Scope({"t": t}, like=t)
    for name, let in checked.lets.items():
        scope[name] = let_function(let, scope)
    torch.testing.assert_close(scope["beta"](t), 0.1 + 19.9 * t)
    torch.testing.assert_close(scope["half"](t), 1.5 * t**2)


@pytest.mark.parametrize("text", [EBM, VP_BY_DERIVATIVE], ids=["reductions", "derivative"])
def test_the_new_expressions_train_from_the_cli(text, tmp_path):
    spec = tmp_path / "spec.gen"
    spec.write_text(text)
    out = tmp_path / "run"
    argv = ["train", str(spec), "--data", "moons", "--steps", "2", "--batch-size", "16"]
    assert main([*argv, "--out", str(out)]) == 0
    last = json.loads((out / "metrics.jsonl").read_text().splitlines()[-1])
    assert last["step"] == 2 and np.isfinite(last["loss"])


def test_the_symbolic_core_reads_reductions_of_numbers_and_refuses_vectors():
    spec = EBM.replace(
        "model well {", "model well {\n  let g(t) = sum(t) + mean(2 * t) + norm(-t) + dot(t, t)"
    )
    checked = gendsl.check(spec)
    t = symbol("t")
    got = to_sympy(checked.lets["g"].value, checked.lets)
    assert sp.simplify(got - (3 * t + sp.Abs(t) + t**2)) == 0
    with pytest.raises(SpecError, match=r"sum\(\.\.\.\) reduces a per-sample vector"):
        to_sympy(checked.energy.value, checked.lets, symbols={"x": sp.Symbol("x")})


def test_derive_states_the_schedule_and_the_energy(tmp_path, capsys):
    vp = tmp_path / "vp.gen"
    vp.write_text(VP_BY_DERIVATIVE)
    assert main(["derive", str(vp), "--brief"]) == 0
    assert "diffusion: g(t) = sqrt(1990*t + 10)/10" in capsys.readouterr().out  # √(0.1+19.9t)
    assert main(["derive", "examples/ebm_rings_expression.gen", "--brief"]) == 0
    out = capsys.readouterr().out
    assert "energy: U(x) = 0.5 * (norm(x) - r)^2 + 0.01 * sum(x^2) + E(x)  (sum, mean" in out
