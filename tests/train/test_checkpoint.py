"""Checkpoints: contents load with weights_only, random states round-trip, SIGKILL safety;
EMA and device resolution."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from train_toys import Regression, regression_data

from gendsl.errors import UsageError
from gendsl.train import (
    EMA,
    capture_rng,
    ema_update,
    fit,
    load_checkpoint,
    resolve_device,
    restore_rng,
    save_checkpoint,
)

torch.set_num_threads(1)
ROOT = Path(__file__).resolve().parents[2]


def _draws(gen):
    return (
        torch.rand(3),
        np.random.rand(3),
        [random.random() for _ in range(3)],
        torch.rand(3, generator=gen),
        np.random.randn(),
        random.gauss(0, 1),
    )


def test_rng_states_round_trip_through_a_weights_only_file(tmp_path):
    gen = torch.Generator().manual_seed(5)
    torch.manual_seed(1)
    np.random.seed(2)
    random.seed(3)
    np.random.randn()  # leave a cached gaussian in numpy's state
    random.gauss(0, 1)  # and in python's
    save_checkpoint(tmp_path / "c.pt", {"format": 1, "rng": capture_rng(gen)})
    first = _draws(gen)
    restore_rng(load_checkpoint(tmp_path / "c.pt", entries=("rng",))["rng"], gen)
    second = _draws(gen)
    for a, b in zip(first, second, strict=True):
        assert np.array_equal(np.asarray(a), np.asarray(b))
    third = _draws(gen)  # the test can fail: the streams do move on
    assert not np.array_equal(np.asarray(first[0]), np.asarray(third[0]))


def test_checkpoint_holds_everything_and_loads_with_weights_only(tmp_path):
    fit(
        Regression(),
        regression_data(32, 0),
        steps=6,
        batch_size=4,
        lr=0.01,
        checkpoint_every=3,
        out_dir=tmp_path,
        progress=False,
        device="cpu",
        spec_text="model toy {}",
        config={"lr": 0.01, "out": tmp_path, "betas": (0.9, 0.99)},
    )
    state = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert state["step"] == 6 and state["spec"] == "model toy {}"
    config = {"lr": 0.01, "out": str(tmp_path), "betas": [0.9, 0.99], "world_size": 1}
    assert state["config"] == config and state["world_size"] == 1
    assert set(state["versions"]) == {"gendsl", "torch", "python"}
    assert set(state["rng"]) == {"torch", "cuda", "numpy", "python", "batches"}
    assert set(state["model"]) == {"net.weight", "net.bias"}
    assert set(state["ema"]["shadow"]) == {"net.weight", "net.bias"}
    assert set(state["optimizers"]) == {"model"} and state["scaler"] is None
    with pytest.raises(UsageError, match="different spec"):
        fit(
            Regression(),
            regression_data(32, 0),
            steps=9,
            batch_size=4,
            lr=0.01,
            resume=True,
            out_dir=tmp_path,
            progress=False,
            device="cpu",
            spec_text="model other {}",
        )


def test_save_is_atomic_when_the_write_fails(tmp_path, monkeypatch):
    path = save_checkpoint(tmp_path / "c.pt", {"format": 1, "step": 1})
    before = path.read_bytes()

    def broken_save(obj, f):
        f.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, {"format": 1, "step": 2})
    assert path.read_bytes() == before and sorted(os.listdir(tmp_path)) == ["c.pt"]


_KILLED_RUN = """
import sys, torch
torch.set_num_threads(1)
from train_toys import Regression, regression_data
from gendsl.train import fit
torch.manual_seed(0)
fit(Regression(hidden=20000), regression_data(256, 0), steps=10**6, batch_size=32, lr=1e-3,
    checkpoint_every=7, log_every=7, out_dir=sys.argv[1], progress=False, device="cpu")
"""


@pytest.mark.slow
def test_sigkill_mid_run_leaves_a_loadable_checkpoint(tmp_path):
    rng = random.Random(0)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(Path(__file__).parent)])}
    for attempt in range(4):
        out = tmp_path / f"run{attempt}"
        proc = subprocess.Popen(
            [sys.executable, "-c", _KILLED_RUN, str(out)], env=env, stderr=subprocess.PIPE
        )
        deadline = time.monotonic() + 60
        while not (out / "checkpoint.pt").exists():
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.monotonic() < deadline
            time.sleep(0.01)
        time.sleep(rng.uniform(0.0, 0.4))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stderr.close()
        state = torch.load(out / "checkpoint.pt", weights_only=True)
        assert state["step"] > 0 and state["step"] % 7 == 0
        assert state["model"]["net.0.weight"].shape == (20000, 3)
        # the run continues from the checkpoint; leftovers of a cut write are cleared
        model = Regression(hidden=20000)
        result = fit(
            model,
            regression_data(256, 0),
            steps=state["step"] + 1,
            batch_size=32,
            lr=1e-3,
            resume=True,
            out_dir=out,
            progress=False,
            device="cpu",
        )
        assert result.step == state["step"] + 1
        assert not list(out.glob(".checkpoint.pt.*"))


def test_ema_update_is_the_hand_formula():
    s, theta = torch.tensor([1.0, -2.0]), torch.tensor([3.0, 0.5])
    ema_update(s, theta, 0.9)
    torch.testing.assert_close(s, torch.tensor([0.9 * 1 + 0.1 * 3, 0.9 * -2 + 0.1 * 0.5]))
    model = torch.nn.Linear(2, 1)
    ema = EMA(model, 0.5)
    w0 = model.weight.detach().clone()
    with torch.no_grad():
        model.weight.add_(1.0)
    ema.update(model)  # warm-up: the first decay is min(0.5, 1/10) = 0.1
    torch.testing.assert_close(ema.shadow["weight"], w0 + 0.9)
    with ema.applied(model):
        torch.testing.assert_close(model.weight, w0 + 0.9)
    torch.testing.assert_close(model.weight, w0 + 1.0)
    assert [EMA(model, 0.5).current_decay()] == [0.1]
    ema.updates = 100  # (1 + 100)/(10 + 100) > 0.5: the decay has saturated at beta
    assert ema.current_decay() == 0.5
    ema.update(model)
    torch.testing.assert_close(ema.shadow["weight"], w0 + 0.95)
    with pytest.raises(UsageError, match=r"1\.0"):
        EMA(model, 1.0)


def test_resolve_device():
    assert resolve_device("cpu") == torch.device("cpu")
    expected = (
        "cuda"
        if torch.cuda.is_available()
        else ("mps" if torch.backends.mps.is_available() else "cpu")
    )
    assert resolve_device("auto").type == expected
    with pytest.raises(UsageError, match="'tpu'"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(UsageError, match="'cuda'"):
            resolve_device("cuda")
