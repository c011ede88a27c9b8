"""GPU paths (skipped without CUDA): mixed precision, device placement, resume on the GPU."""

from __future__ import annotations

import pytest
import torch
from train_toys import NOISE, Regression, regression_data

from gendsl.nn import build_network
from gendsl.train import fit, load_checkpoint

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


def test_mixed_precision_training_learns_on_cuda(tmp_path):
    torch.manual_seed(0)
    model = Regression()
    result = fit(
        model,
        regression_data(512, 0),
        eval_data=regression_data(2048, 1),
        steps=400,
        batch_size=64,
        lr=0.05,
        ema=0.95,
        eval_every=400,
        out_dir=tmp_path,
        device="cuda",
        amp="auto",
        progress=False,
    )
    assert result.device.type == "cuda" and next(model.parameters()).is_cuda
    assert result.eval["eval_loss"] < NOISE**2 * 1.3
    state = load_checkpoint(tmp_path / "checkpoint.pt")
    assert state["rng"]["cuda"] and state["model"]["net.weight"].device.type == "cpu"


def test_resume_on_cuda_is_bit_for_bit(tmp_path):
    def run(out, steps, resume=False):
        torch.manual_seed(1)
        model = Regression()
        fit(
            model,
            regression_data(256, 0),
            steps=steps,
            batch_size=16,
            lr=0.01,
            checkpoint_every=10,
            out_dir=out,
            resume=resume,
            device="cuda",
            amp="off",
            progress=False,
        )
        return model

    a = run(tmp_path / "a", 30)
    run(tmp_path / "b", 10)
    b = run(tmp_path / "b", 30, resume=True)
    for (n, p), (_, q) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        assert torch.equal(p, q), n


def test_networks_run_on_cuda():
    net = build_network(
        "UNet",
        {"channels": [8, 16]},
        in_shapes=[(1, 8, 8)],
        out_shape=(1, 8, 8),
        time="fourier",
        cond_classes=10,
    ).cuda()
    x = torch.randn(4, 1, 8, 8, device="cuda")
    out = net(x, t=0.5, y=torch.arange(4, device="cuda"))
    assert out.is_cuda and out.shape == (4, 1, 8, 8)


def test_compiled_step_with_cuda_graphs_trains_a_stdlib_spec(tmp_path):
    from gendsl.lower import load
    from gendsl.resources import stdlib_dir

    torch.manual_seed(0)
    model = load(str(stdlib_dir() / "vp_sde.gen"), D=2)
    data = torch.randn(512, 2) * torch.tensor([1.0, 0.5])
    result = fit(
        model,
        data,
        steps=30,
        batch_size=64,
        lr=1e-3,
        compile=True,  # inductor, fixed batch on CUDA: CUDA graphs
        log_every=10,
        out_dir=tmp_path,
        device="cuda",
        progress=False,
    )
    assert result.step == 30 and torch.isfinite(torch.tensor(result.loss))
    assert load_checkpoint(tmp_path / "checkpoint.pt")["step"] == 30


def test_a_training_step_never_waits_for_the_device(tmp_path):
    """Between two sync points no step reads the device back: with CUDA's sync debug mode set
    to "error", steps 6-15 of a run that syncs only at step 20 raise nothing."""

    def strict(step, metrics):
        if step == 5:
            torch.cuda.set_sync_debug_mode("error")
        if step == 15:
            torch.cuda.set_sync_debug_mode("default")

    torch.manual_seed(0)
    try:
        fit(
            Regression(),
            regression_data(256, 0),
            steps=20,
            batch_size=32,
            lr=0.01,
            log_every=20,
            checkpoint_every=20,
            out_dir=tmp_path,
            device="cuda",
            progress=False,
            hooks=[strict],
        )
    finally:
        torch.cuda.set_sync_debug_mode("default")
