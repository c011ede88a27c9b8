"""``gendsl eval``'s teaching experiments on tiny trained runs: mode coverage on the
Gaussian-mixture toy sets and the critic's Kantorovich–Rubinstein gap next to POT's W1."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from cli_support import STDLIB

from gendsl.cli import main
from gendsl.data import toy
from gendsl.metrics import w1
from gendsl.metrics.modes import mode_coverage
from gendsl.run_eval import lipschitz_constraint
from gendsl.run_sampling import draw
from gendsl.runs import build_model, dataset_for, open_run

torch.set_num_threads(1)
N = 200


def _train_and_eval(spec: str, data: str, out: Path, capsys) -> dict[str, float]:
    argv = ["train", str(STDLIB / spec), "--data", data, "--out", str(out), "--no-progress"]
    assert main([*argv, "--steps", "3", "--batch-size", "16"]) == 0
    capsys.readouterr()
    assert main(["eval", str(out), "-n", str(N), "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_eval_reports_modes_and_kr_gap_of_a_wgan_on_8gaussians(tmp_path, capsys) -> None:
    results = _train_and_eval("wgan_gp.gen", "8gaussians", tmp_path / "run", capsys)
    model, _ = open_run(tmp_path / "run")
    fake = draw(model, N, seed=0)
    real = dataset_for(model.checked, "8gaussians", split="test", seed=0, n=N).x
    centres, std = toy.mixture_modes("8gaussians")
    coverage = mode_coverage(fake, centres, std)
    assert results["modes_total"] == 8
    assert results["modes_covered"] == coverage.covered
    assert results["high_quality_fraction"] == coverage.high_quality
    assert results["w1"] == pytest.approx(w1(fake, real), rel=1e-12)
    with torch.no_grad():
        gap = float(model.critic(real).mean() - model.critic(fake).mean())
    assert results["critic_gap"] == pytest.approx(gap, rel=1e-6, abs=1e-9)
    assert results["critic_grad_norm_max"] > 0


def test_eval_of_a_plain_gan_has_modes_but_no_kr_gap(tmp_path, capsys) -> None:
    results = _train_and_eval("gan.gen", "25gaussians", tmp_path / "run", capsys)
    assert results["modes_total"] == 25
    assert 0 <= results["modes_covered"] <= 25
    assert "critic_gap" not in results and "w1" not in results


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("gan.gen", None),
        ("wgan.gen", "clip"),
        ("wgan_gp.gen", "gradient"),
        ("dragan.gen", "dragan"),
        ("sngan.gen", "spectral_norm"),
        ("realnvp.gen", None),
    ],
)
def test_lipschitz_constraint_of_each_stdlib_critic(spec: str, expected: str | None) -> None:
    model = build_model(str(STDLIB / spec), data="moons")
    assert lipschitz_constraint(model) == expected
