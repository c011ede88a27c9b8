"""Every 28x28 example under ``examples/`` checks, compiles, takes one training step on a tiny
batch of 8-bit images, and samples ``[n, 1, 28, 28]``."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
import torch

from gendsl.analysis import load_checked
from gendsl.lower import compile_model
from gendsl.runs import train_settings
from gendsl.train import fit

torch.set_num_threads(1)

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
IMAGE_EXAMPLES = sorted(p.name for p in EXAMPLES.glob("*fontdigits*.gen"))
#: Samplers whose default takes hundreds of network calls run with few steps here.
FEW_STEPS = {
    "cfg_fontdigits.gen": 2,
    "ddpm_fontdigits.gen": 4,
    "ebm_fontdigits.gen": 3,
    "ot_cfm_fontdigits_unet.gen": 4,
}


def test_every_family_has_an_image_example():
    families = {load_checked(str(EXAMPLES / n), None).family for n in IMAGE_EXAMPLES}
    assert families == {"diffusion", "matching", "latent", "flow", "adversarial", "energy"}


@pytest.mark.parametrize("name", IMAGE_EXAMPLES)
def test_image_example_trains_one_step_and_samples_28px_images(name, tmp_path):
    checked = load_checked(str(EXAMPLES / name), None)
    torch.manual_seed(0)
    model = compile_model(checked, bindings={})
    model.set_data_levels(256)  # as `gendsl train --data fontdigits` does
    if model.capabilities.takes("--teacher"):
        teacher = load_checked(str(EXAMPLES / "vp_sde_fontdigits_v.gen"), None)
        model.set_teacher(compile_model(teacher, bindings={}))
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (4, 1, 28, 28), generator=g).float() / 255
    y = torch.randint(0, 10, (4,), generator=g)
    data = (x, y) if checked.condition_vars() else x
    args = argparse.Namespace(steps=1, batch_size=4, lr=None, eval_every=None)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    result = fit(
        model,
        data,
        out_dir=tmp_path,
        progress=False,
        device="cpu",
        **train_settings(checked, args),
    )
    assert result.step == 1
    moved = [k for k, v in model.state_dict().items() if not torch.equal(v, before[k])]
    assert moved, "one training step changed no parameter"
    model.eval()
    opts = {"y": y[:2]} if checked.condition_vars() else {}
    if name in FEW_STEPS:
        opts["steps"] = FEW_STEPS[name]
    s = model.sample(2, generator=torch.Generator().manual_seed(0), **opts)
    assert s.shape == (2, 1, 28, 28) and torch.isfinite(s).all()
