"""Regressions of ``gendsl train`` / ``sample`` / ``eval`` found by trying the stdlib specs.

In-process (:func:`gendsl.cli.main`): no interpreter start-up per case.
"""

from __future__ import annotations

import json
import math

import numpy as np
import torch
from cli_support import STDLIB

from gendsl.cli import main

torch.set_num_threads(1)


def test_a_consistency_run_samples_its_levels_method_is_not_overwritten(tmp_path, capsys):
    run = tmp_path / "ct"
    spec = str(STDLIB / "consistency_training.gen")
    argv = ["train", spec, "--data", "digits", "--steps", "3", "--batch-size", "8"]
    assert main([*argv, "--out", str(run), "--no-progress"]) == 0, capsys.readouterr().err
    out = tmp_path / "x.npy"
    assert main(["sample", str(run), "-n", "4", "--out", str(out)]) == 0, capsys.readouterr().err
    samples = np.load(out)
    assert samples.shape == (4, 64) and np.isfinite(samples).all()


def test_an_enumerated_latent_model_evaluates_held_out_data_without_gradients(tmp_path, capsys):
    run = tmp_path / "dv"
    spec = str(STDLIB / "discrete_vae.gen")
    argv = ["train", spec, "--data", "digits_binary", "--steps", "4", "--batch-size", "16"]
    assert main([*argv, "--out", str(run), "--no-progress"]) == 0, capsys.readouterr().err
    last = json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])
    assert last["step"] == 4 and math.isfinite(last["eval_loss"])
    assert last["eval_loss"] > 0 and last["eval_elbo"] < 0
    capsys.readouterr()
    assert main(["eval", str(run), "-n", "50", "--json"]) == 0
    results = json.loads(capsys.readouterr().out)
    assert results["neg_elbo_nats"] > 0 and results["n"] == 50
