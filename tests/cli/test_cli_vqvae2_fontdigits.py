"""`gendsl train examples/vqvae2_fontdigits.gen --data fontdigits` then `gendsl sample`: a
two-level VQ-VAE (VQ-VAE-2) with a 7x7 top and a 14x14 bottom grid of codes, each with its own
codebook and PixelCNN prior, writes [n, 1, 28, 28] samples (the small fontdigits fixture
keeps it cheap)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from gendsl.cli import main
from gendsl.runs import open_run

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "vqvae2_fontdigits.gen"


def test_vqvae2_trains_two_code_levels_and_samples(small_fontdigits, tmp_path: Path):
    run = tmp_path / "run"
    argv = ["train", str(EXAMPLE), "--data", "fontdigits", "--out", str(run), "--no-progress"]
    assert main([*argv, "--steps", "3", "--batch-size", "8"]) == 0
    model, _ = open_run(run, device="cpu")
    assert [level.name for level in model.levels] == ["t", "b"]
    assert model.quantizer_b is not model.quantizer and model.prior_b is not model.prior
    x = torch.rand(2, 1, 28, 28)
    with torch.no_grad():
        model.loss(x)
    assert model.quantizer.last["index"].shape == (2, 7, 7)
    assert model.quantizer_b.last["index"].shape == (2, 14, 14)
    assert model.prior.grid == (7, 7) and model.prior_b.grid == (14, 14)
    out = tmp_path / "samples.npy"
    assert main(["sample", str(run), "-n", "3", "--out", str(out), "--seed", "1"]) == 0
    samples = np.load(out)
    assert samples.shape == (3, 1, 28, 28) and np.isfinite(samples).all()
