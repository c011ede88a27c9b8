"""`gendsl train SPEC --data fontdigits` trains a 28x28 UNet spec and `gendsl sample` writes
[n, 1, 28, 28]: three levels (28, 14, 7 px, as `examples/vp_sde_fontdigits_unet.gen`) and four
levels, which pad 28 to 32 inside the network and crop back.  Tiny widths, and the bundled
recipe at a small size (64/16 images, generated into a temporary cache), keep the test cheap."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from gendsl.cli import main
from gendsl.runs import open_run

SPEC = """\
model tiny_unet {
  data x : image[1, 28, 28]
  let beta(t) = 0.1 + (20 - 0.1) * t
  sde dx = -0.5 * beta(t) * x * dt + sqrt(beta(t)) * dw, t in [0, 1]
  net eps = UNet(channels = CHANNELS, attention = [ATTENTION], dropout = 0.1, time = fourier)
  predict eps = eps(x_t, t)
  loss dsm
  sample with dpm_solver(order = 2, steps = 4)
}
"""


@pytest.mark.parametrize(("channels", "attention"), [("[8, 8, 8]", 7), ("[8, 8, 8, 8]", 8)])
def test_a_28px_unet_trains_on_fontdigits_and_samples_28px(
    channels: str, attention: int, small_fontdigits, tmp_path: Path
) -> None:
    path = tmp_path / "unet.gen"
    path.write_text(SPEC.replace("CHANNELS", channels).replace("ATTENTION", str(attention)))
    run = tmp_path / "run"
    argv = ["train", str(path), "--data", "fontdigits", "--out", str(run), "--no-progress"]
    assert main([*argv, "--steps", "2", "--batch-size", "4"]) == 0
    _, config = open_run(run, device="cpu")
    assert config["levels"] == 256
    out = tmp_path / "samples.npy"
    assert main(["sample", str(run), "-n", "3", "--out", str(out)]) == 0
    samples = np.load(out)
    assert samples.shape == (3, 1, 28, 28) and np.isfinite(samples).all()
