"""Conditional GANs and JEM energies (the stdlib models and the examples) from the command line:
train a few steps on the labelled 8×8 digits, sample with ``--condition y=3``, evaluate with
class agreement."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from cli_support import REPO, STDLIB

from gendsl.cli import main

torch.set_num_threads(1)


def _train(spec: Path, out: Path) -> Path:
    argv = ["train", str(spec), "--data", "digits", "--out", str(out), "--no-progress"]
    assert main([*argv, "--steps", "3", "--batch-size", "16"]) == 0
    return out


#: The stdlib models and the examples that extend them (examples/cgan_digits.gen,
#: examples/conditional_ebm_digits.gen).
SPECS = [STDLIB / "cgan.gen", STDLIB / "conditional_ebm.gen"]
SPECS += [REPO / "examples" / "cgan_digits.gen", REPO / "examples" / "conditional_ebm_digits.gen"]


@pytest.mark.parametrize("spec", SPECS, ids=[p.stem for p in SPECS])
def test_conditioned_samples_of_a_tiny_trained_run_have_the_right_shape(spec, tmp_path, capsys):
    energy = "ebm" in spec.stem
    run = _train(spec, tmp_path / spec.stem)
    out = tmp_path / "s.npz"
    argv = ["sample", str(run), "-n", "5", "--condition", "y=3", "--out", str(out)]
    assert main([*argv, *(["--steps", "2"] if energy else [])]) == 0
    saved = np.load(out)
    assert saved["samples"].shape == (5, 64) and np.isfinite(saved["samples"]).all()
    assert saved["condition_y"].tolist() == [3] * 5
    capsys.readouterr()
    extra = ["--steps", "2"] if energy else []
    assert main(["eval", str(run), "-n", "20", "--json", *extra]) == 0
    results = json.loads(capsys.readouterr().out)
    assert 0 <= results["class_agreement"] <= 1 and results["class_agreement_data"] > 0.5


def test_the_label_changes_a_cgan_sample(tmp_path):
    run = _train(STDLIB / "cgan.gen", tmp_path / "cgan")
    draws = []
    for label in ("0", "7"):
        out = tmp_path / f"{label}.npy"
        argv = ["sample", str(run), "-n", "4", "--seed", "1", "--condition", f"y={label}"]
        assert main([*argv, "--out", str(out)]) == 0
        draws.append(np.load(out))
    assert not np.allclose(*draws)


def test_a_cgan_needs_its_label_to_sample(tmp_path, capsys):
    run = _train(STDLIB / "cgan.gen", tmp_path / "cgan")
    assert main(["sample", str(run), "-n", "2", "--out", str(tmp_path / "s.npy")]) == 2
    assert "model cgan is conditional; pass --condition y=LABEL" in capsys.readouterr().err
    argv = ["sample", str(run), "-n", "2", "--condition", "y=10"]
    assert main([*argv, "--out", str(tmp_path / "s.npy")]) == 2
    assert "y is a label of 10 classes" in capsys.readouterr().err
