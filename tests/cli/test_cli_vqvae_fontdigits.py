"""`gendsl train examples/vqvae_fontdigits.gen --data fontdigits` then `gendsl sample`: a VQ-VAE
whose codes form a 7x7 grid writes [n, 1, 28, 28] samples.  The set is the bundled recipe at a
small size (64/16 images, generated into a temporary cache), so the test stays cheap."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from gendsl.cli import main
from gendsl.runs import open_run

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "vqvae_fontdigits.gen"


def test_vqvae_trains_on_fontdigits_with_a_7x7_code_grid(small_fontdigits, tmp_path: Path):
    run = tmp_path / "run"
    argv = ["train", str(EXAMPLE), "--data", "fontdigits", "--out", str(run), "--no-progress"]
    assert main([*argv, "--steps", "3", "--batch-size", "8"]) == 0
    model, _ = open_run(run, device="cpu")
    assert model.nets["enc"].out_shape == (8, 7, 7)
    x = torch.rand(2, 1, 28, 28)
    with torch.no_grad():
        model.loss(x)
    assert model.quantizer.last["index"].shape == (2, 7, 7)
    out = tmp_path / "samples.npy"
    assert main(["sample", str(run), "-n", "5", "--out", str(out), "--seed", "1"]) == 0
    samples = np.load(out)
    assert samples.shape == (5, 1, 28, 28) and np.isfinite(samples).all()
