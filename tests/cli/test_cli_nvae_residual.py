"""``loss elbo(residual = true)`` (NVAE's residual normal cells) trains from the CLI on the
8x8 digits: the example spec runs a few steps, its guide sites are residuals of the prior, the
held-out loss falls, and ``sample`` writes draws of the data's shape."""

from __future__ import annotations

import json
import math

import numpy as np
import torch
from cli_support import REPO

from gendsl.cli import main
from gendsl.lower.residual import ResidualPlan
from gendsl.runs import open_run

torch.set_num_threads(1)


def test_nvae_residual_example_trains_and_samples(tmp_path):
    out, samples = tmp_path / "run", tmp_path / "s.npy"
    spec = REPO / "examples" / "nvae_residual_digits.gen"
    argv = ["train", str(spec), "--data", "digits", "--out", str(out), "--no-progress"]
    assert main([*argv, "--steps", "40", "--eval-every", "20"]) == 0
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    losses = [r["eval_loss"] for r in rows if "eval_loss" in r]
    assert len(losses) == 2 and all(math.isfinite(v) for v in losses)
    assert losses[-1] < losses[0], losses
    model, _ = open_run(out, device="cpu")
    assert all(isinstance(p, ResidualPlan) for p in model.program.guide)
    assert main(["sample", str(out), "-n", "5", "--seed", "1", "--out", str(samples)]) == 0
    assert np.load(samples).shape == (5, 64)
