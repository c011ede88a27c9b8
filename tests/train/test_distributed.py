"""Data-parallel training with torch.distributed (gloo, 2 CPU processes started by torchrun):
one DDP step's gradient is the one-process gradient of the concatenated batch, a killed run
resumes bit-for-bit, a rank that fails stops every rank with the error shown once."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from ddp_worker import main as worker_main
from train_toys import Regression, regression_data

from gendsl.train import load_checkpoint, read_metrics
from gendsl.train.distributed import relaunch_argv, shard

ROOT = Path(__file__).resolve().parents[2]
WORKER = Path(__file__).with_name("ddp_worker.py")
EPS = torch.finfo(torch.float32).eps
BATCH = 16  # the global batch of ddp_worker

pytestmark = pytest.mark.slow


def _torchrun(*args: str, nproc: int = 2) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": os.pathsep.join([str(ROOT), str(WORKER.parent)]),
    }
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    command += ["--nproc_per_node", str(nproc), str(WORKER), *args]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Path:
    """2-process runs: ``all`` (one SGD step of each model, a 30-step run), and the same run
    killed at step 17 then resumed; one-process references in this process."""
    root = tmp_path_factory.mktemp("ddp")
    done = _torchrun("all", str(root / "ddp"))
    assert done.returncode == 0, done.stderr
    killed = _torchrun("kill", str(root / "killed"))
    assert killed.returncode != 0  # rank 1 was SIGKILLed, torchrun stopped rank 0
    assert load_checkpoint(root / "killed/checkpoint.pt")["step"] == 15
    resumed = _torchrun("resume", str(root / "killed"))
    assert resumed.returncode == 0, resumed.stderr
    worker_main("all", str(root / "one"), 30)
    return root


def _global_batch(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """The rows fit draws for the first global batch (its generator, on the CPU)."""
    x, y = regression_data(256, 0)
    idx = torch.randint(256, (BATCH,), generator=torch.Generator().manual_seed(seed))
    return x[idx].double(), y[idx].double()


def test_ddp_step_gradient_is_the_gradient_of_the_concatenated_batch(runs):
    x, y = _global_batch()
    torch.manual_seed(0)
    net = Regression(jitter=0.0).net  # the initial weights of ddp_worker (seed 0)
    theta0 = torch.cat([net.weight.detach().reshape(-1), net.bias.detach()]).double()
    residual = x @ theta0[:3, None] + theta0[3] - y  # [B, 1]
    per_row = torch.cat([2 * residual * x, 2 * residual], dim=1)  # d(r²)/d(w, b) per row
    grad = per_row.mean(0)
    # float32: each row's gradient is off by a few eps relative, and a mean of B terms summed
    # in any order by at most B·eps·mean|g_i| (the 2 ranks' halves, or the whole batch)
    bound = (BATCH + 4) * EPS * per_row.abs().mean(0)
    for run in ("one", "ddp"):
        state = load_checkpoint(runs / f"{run}/sgd/checkpoint.pt")
        theta1 = torch.cat([state["model"]["net.weight"].reshape(-1), state["model"]["net.bias"]])
        step = theta0 - theta1.double()  # SGD with lr 1: the step is the gradient
        # theta1 itself is rounded to float32: half an ulp of |theta1|
        assert ((step - grad).abs() <= bound + EPS * theta1.double().abs()).all(), (run, step)
        assert state["world_size"] == (2 if run == "ddp" else 1)


def test_two_optimiser_step_averages_each_players_gradient(runs):
    x, _ = _global_batch()
    a0, mu0 = torch.tensor([0.5, -0.25, 1.0]).double(), torch.zeros(3).double()
    grad_a = (2 * ((x @ a0) - 1)[:, None] * x).mean(0)
    grad_mu = (2 * (mu0 - x)).mean(0)
    one = load_checkpoint(runs / "one/players/checkpoint.pt")["model"]
    ddp = load_checkpoint(runs / "ddp/players/checkpoint.pt")["model"]
    for state in (one, ddp):
        bound = 4 * BATCH * EPS * (x.abs().max() ** 2 + 1)
        assert (a0 - state["a"].double() - grad_a).abs().max() <= bound
        assert (mu0 - state["mu"].double() - grad_mu).abs().max() <= bound
    opt = load_checkpoint(runs / "ddp/players/checkpoint.pt")["optimizers"]
    assert set(opt) == {"critic", "generator"}


def test_only_rank_0_writes_and_every_line_records_the_world_size(runs):
    run = runs / "ddp/run"
    assert sorted(p.name for p in run.iterdir()) == ["checkpoint.pt", "metrics.jsonl"]
    records = read_metrics(run / "metrics.jsonl")
    assert [r["step"] for r in records] == [5, 10, 15, 20, 25, 30]  # one log, not two
    assert all(r["world_size"] == 2 for r in records)
    state = load_checkpoint(run / "checkpoint.pt")
    assert state["world_size"] == 2 and len(state["rng_ranks"]) == 2
    # each rank drew its own jitter: the ranks' torch generators differ
    assert not torch.equal(state["rng_ranks"][0]["torch"], state["rng_ranks"][1]["torch"])
    # a different world size draws different noise: not the one-process run
    one = load_checkpoint(runs / "one/run/checkpoint.pt")
    assert not torch.equal(one["model"]["net.weight"], state["model"]["net.weight"])


def test_two_process_run_resumes_bit_for_bit_after_kill_9(runs):
    straight = load_checkpoint(runs / "ddp/run/checkpoint.pt")
    resumed = load_checkpoint(runs / "killed/checkpoint.pt")
    assert straight["step"] == resumed["step"] == 30
    for key in ("model", "ema", "optimizers", "rng_ranks"):
        assert _same(straight[key], resumed[key]), key
    a = read_metrics(runs / "ddp/run/metrics.jsonl")
    b = read_metrics(runs / "killed/metrics.jsonl")
    for ra, rb in zip(a, b, strict=True):
        assert {k: ra[k] for k in ra if k not in ("time", "steps_per_s")} == {
            k: rb[k] for k in rb if k not in ("time", "steps_per_s")
        }


def _same(a, b) -> bool:
    if isinstance(a, torch.Tensor):
        return torch.equal(a, b)
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return a == b


def test_a_failing_rank_stops_every_rank_with_the_error_shown_once(tmp_path):
    result = _torchrun("raise", str(tmp_path / "run"), "1000")
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert output.count("RuntimeError: rank 1 failed on purpose") == 1, output[-3000:]
    # rank 0 was stopped waiting for rank 1 in step 3, before its first checkpoint (step 5)
    assert not (tmp_path / "run/checkpoint.pt").exists()


def test_batch_must_split_evenly_over_the_ranks(monkeypatch):
    monkeypatch.setattr("gendsl.train.distributed.world_size", lambda: 3)
    monkeypatch.setattr("gendsl.train.distributed.rank", lambda: 1)
    assert shard(12) == (4, 8)
    with pytest.raises(Exception, match="batch size 16 is not a multiple of the 3 processes"):
        shard(16)


def test_nproc_relaunches_the_same_train_arguments():
    from gendsl.cli import _parser

    common = "train stdlib/vae.gen --data digits_binary --steps 40 --device cpu --out runs/ddp"
    args = _parser().parse_args([*common.split(), "--nproc", "2", "--compile"])
    argv = relaunch_argv(args.parser, args)
    assert argv == [*common.split(), "--compile"]
    again = _parser().parse_args(argv)
    assert again.nproc is None and again.steps == 40 and again.compile


def _gendsl(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "gendsl.cli", *args]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=300, cwd=ROOT)


def test_gendsl_train_nproc_2_trains_one_model(tmp_path):
    out = tmp_path / "ddp"
    result = _gendsl(
        "train", "stdlib/vae.gen", "--data", "digits_binary", "--steps", "40", "--device", "cpu",
        "--out", str(out), "--nproc", "2", "--no-progress",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("trained vae for 40 steps") == 1  # rank 0 speaks
    assert sorted(p.name for p in out.iterdir()) == ["checkpoint.pt", "metrics.jsonl", "spec.gen"]
    records = read_metrics(out / "metrics.jsonl")
    assert [(r["step"], r["world_size"]) for r in records] == [(40, 2)]
    state = load_checkpoint(out / "checkpoint.pt")
    assert state["world_size"] == state["config"]["world_size"] == 2 and state["step"] == 40


def test_an_error_of_every_rank_is_shown_once_with_its_exit_status(tmp_path):
    result = _gendsl(
        "train", "stdlib/vae.gen", "--data", "nosuchset", "--device", "cpu",
        "--out", str(tmp_path / "run"), "--nproc", "2",
    )  # fmt: skip
    assert result.returncode == 2  # a usage error, as in one process
    assert result.stderr.count("data file not found: nosuchset") == 1, result.stderr
    assert "Traceback" not in result.stderr
