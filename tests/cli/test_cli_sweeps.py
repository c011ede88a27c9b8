"""``gendsl eval --nfe-sweep`` and ``--guidance-sweep`` on tiny trained runs: one row per
(sampler, NFE budget) with the network calls counted as the registry declares, one row per
guidance scale equal to ``eval --guidance-scale`` at that scale, and the PNG plot."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from cli_support import STDLIB, tiny_diffusion

from gendsl import sampler_registry as registry
from gendsl.cli import main
from gendsl.metrics.sweeps import sweep_variants
from gendsl.run_eval import evaluate
from gendsl.runs import dataset_for, open_run

torch.set_num_threads(1)

TINY_CFG = """\
model tiny_cfg {
  data x : real[D]
  condition y : label[K]
  let beta(t) = 0.1 + 19.9 * t
  sde dx = -0.5 * beta(t) * x * dt + sqrt(beta(t)) * dw, t in [0, 1]
  net eps = MLP(hidden = [16, 16], time = fourier)
  predict eps = eps(x_t, t, y)
  loss dsm
  guidance classifier_free(scale = 3, drop = 0.1)
  sample with dpm_solver(order = 2, steps = 8)
}
"""

FLOW = (STDLIB / "flow_matching.gen").read_text().replace("[256, 256, 256]", "[16]")


def _train(spec: Path, out: Path, data: str) -> Path:
    argv = ["train", str(spec), "--data", data, "--out", str(out), "--no-progress"]
    assert main([*argv, "--steps", "3", "--batch-size", "16"]) == 0
    return out


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("sweeps")
    (root / "vp.gen").write_text(tiny_diffusion(hidden=16))
    (root / "cfg.gen").write_text(TINY_CFG)
    (root / "fm.gen").write_text(FLOW)
    return {
        "vp": _train(root / "vp.gen", root / "vp", "8gaussians"),
        "cfg": _train(root / "cfg.gen", root / "cfg", "moons"),
        "fm": _train(root / "fm.gen", root / "fm", "moons"),
    }


def _eval(capsys, *argv: str):
    capsys.readouterr()
    assert main(["eval", *argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


@pytest.mark.parametrize("name", ["vp", "fm"])
def test_nfe_sweep_has_one_row_per_sampler_and_budget_and_counts_nfe(runs, name, capsys, tmp_path):
    budgets = [3, 8]
    plot = tmp_path / "nfe.png"
    rows = _eval(capsys, str(runs[name]), "-n", "40", "--nfe-sweep", "3,8", "--plot", str(plot))
    model, _ = open_run(runs[name])
    labels = [label for label, _, _ in sweep_variants(model)]
    if name == "vp":  # every SDE sampler with a fixed count; the ODE by its fixed-step solvers
        assert labels == [
            "ancestral", "euler_maruyama", "ode(euler)", "ode(heun)", "ode(rk4)",
            "ode(midpoint)", "pc", "ddim", "dpm_solver", "unipc",
        ]  # fmt: skip
    else:
        assert labels == ["ode(euler)", "ode(heun)", "ode(rk4)", "ode(midpoint)"]
    # rk4 (4 calls a step, >= 2 steps with the final one) cannot run on 3 evaluations
    expected = [
        (label, b) for label in labels for b in budgets if not (label.endswith("(rk4)") and b < 5)
    ]
    if name == "fm":  # the matching ODE has no final step: rk4 takes 1 step in 4 calls > 3
        expected = [
            (label, b) for label in labels for b in budgets if (label, b) != ("ode(rk4)", 3)
        ]
    assert [(r["sampler"], r["budget"]) for r in rows] == expected
    for row in rows:
        assert row["nfe"] == row["nfe_declared"] <= row["budget"]
        assert row["w2"] > 0
    heun = {r["budget"]: r for r in rows if r["sampler"] == "ode(heun)"}
    assert heun[8]["nfe"] == (7 if name == "vp" else 8)  # 2 calls a step, + 1 final Tweedie
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_registry_nfe_of_the_sweep_matches_steps_for_nfe(runs) -> None:
    model, _ = open_run(runs["vp"])
    for _, decl, options in sweep_variants(model):
        steps = registry.steps_for_nfe(decl, 10, options)
        assert registry.nfe(decl, steps, options) <= 10 < registry.nfe(decl, steps + 1, options)


def test_guidance_sweep_rows_equal_eval_at_each_scale(runs, capsys, tmp_path) -> None:
    plot = tmp_path / "g.png"
    rows = _eval(
        capsys, str(runs["cfg"]), "-n", "30", "--guidance-sweep", "0,3", "--plot", str(plot)
    )
    assert [r["guidance_scale"] for r in rows] == [0.0, 3.0]
    model, _ = open_run(runs["cfg"])
    data = dataset_for(model.checked, "moons", split="test", seed=0, n=30)
    for row in rows:
        single = evaluate(model, data, n=30, seed=0, guidance_scale=row["guidance_scale"])
        for key in ("w2", "precision", "recall"):
            assert row[key] == pytest.approx(single[key], rel=1e-9, abs=1e-12), key
    assert rows[0]["w2"] != rows[1]["w2"]
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--nfe-sweep", "4,x"], "--nfe-sweep takes comma-separated numbers, e.g. 5,10,20"),
        (["--nfe-sweep", "0,4"], "every NFE budget must be >= 1"),
        (["--nfe-sweep", "4", "--samplers", "foo"], "--samplers: foo not swept on this model"),
        (["--guidance-sweep", "1"], "--guidance-sweep applies to guided models"),
        (["--plot", "x.png"], "--plot draws a sweep: add --nfe-sweep or --guidance-sweep"),
        (["--nfe-sweep", "4", "--guidance-sweep", "1"], "give one of --nfe-sweep and"),
        (["--nfe-sweep", "4", "--plot", "nfe.txt"], "--plot nfe.txt: unknown file type '.txt'"),
        (["--samplers", "ddim"], "--samplers chooses the samplers of --nfe-sweep"),
        (["--guidance-sweep", "1,inf"], "--guidance-sweep takes comma-separated numbers"),
    ],
)
def test_sweep_usage_errors(runs, argv, message, capsys) -> None:
    capsys.readouterr()
    assert main(["eval", str(runs["vp"]), *argv]) == 2
    assert message in capsys.readouterr().err


def test_eval_of_an_sde_run_reports_its_elbo_next_to_the_pf_ode_nll(runs, capsys) -> None:
    from gendsl.metrics.sde_elbo import sde_neg_elbo

    results = _eval(capsys, str(runs["vp"]), "-n", "40")
    model, _ = open_run(runs["vp"])
    real = dataset_for(model.checked, "8gaussians", split="test", seed=0, n=40).x
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        bound = sde_neg_elbo(model.process, model.sampling_score_fn({}, scale=None), real,
                             generator=gen)  # fmt: skip
    assert results["sde_neg_elbo_nats"] == pytest.approx(float(bound.mean()), rel=1e-6)
    assert results["sde_neg_elbo_bits_per_dim"] == pytest.approx(
        results["sde_neg_elbo_nats"] / (2 * math.log(2)), rel=1e-12
    )
    assert math.isfinite(results["nll_nats"])


def test_nfe_sweep_on_digits_adds_digits_fd(tmp_path, capsys) -> None:
    (tmp_path / "vp.gen").write_text(tiny_diffusion(hidden=16))
    run = _train(tmp_path / "vp.gen", tmp_path / "run", "digits")
    argv = [str(run), "-n", "20", "--nfe-sweep", "3", "--samplers", "ddim,unipc"]
    rows = _eval(capsys, *argv)
    assert [(r["sampler"], r["nfe"]) for r in rows] == [("ddim", 3), ("unipc", 3)]
    assert all(r["digits_fd"] > 0 for r in rows)
