"""``gendsl train --resume`` after ``kill -9``: the continuation is bit-for-bit the straight run.

A run of 2000 steps is compared with one killed by SIGKILL once its checkpoint has passed a
given step (the test polls the checkpoint the subprocess writes) and then resumed to the same
total.  Weights, EMA, optimiser state and random states must be equal (``torch.equal``), and
``metrics.jsonl`` must hold the same records (timings aside).
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from cli_support import ok, tiny_diffusion

from gendsl.cli import main

pytestmark = pytest.mark.slow

torch.set_num_threads(1)

STEPS = 2000
KILL_AFTER = 400
TIMINGS = {"time", "steps_per_s"}


def _train_args(spec: Path, out: Path, *extra: str | int) -> list[str]:
    args = ["train", spec, "--out", out, "--no-progress", "--checkpoint-every", 100, *extra]
    return [str(a) for a in args]


def _checkpoint(out: Path) -> dict:
    return torch.load(out / "checkpoint.pt", map_location="cpu", weights_only=True)


def _records(out: Path) -> list[dict]:
    lines = (out / "metrics.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(line).items() if k not in TIMINGS} for line in lines]


def _assert_same_tree(a: object, b: object, where: str = "") -> None:
    """Equal nested dicts/lists whose tensor leaves are ``torch.equal``."""
    if isinstance(a, dict):
        assert isinstance(b, dict) and set(a) == set(b), where
        for key in a:
            _assert_same_tree(a[key], b[key], f"{where}/{key}")
    elif isinstance(a, (list, tuple)):
        assert isinstance(b, (list, tuple)) and len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _assert_same_tree(x, y, f"{where}[{i}]")
    elif isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and torch.equal(a, b), where
    else:
        assert a == b, where


def _kill_when_checkpoint_passes(cmd: list[str], env: dict, out: Path, step: int) -> int:
    """Start ``cmd``; SIGKILL it once ``out``'s checkpoint records ``step`` or later.
    Returns the checkpoint's step at the kill."""
    path = out / "checkpoint.pt"
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        seen = None
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            stamp = path.stat().st_mtime_ns if path.exists() else None
            if stamp is not None and stamp != seen:
                seen = stamp
                at = int(_checkpoint(out)["step"])  # replaced atomically: always whole
                if at >= step:
                    proc.send_signal(signal.SIGKILL)
                    proc.wait()
                    return at
            time.sleep(0.02)
        raise AssertionError(f"run ended before step {step}: {proc.communicate()[1]}")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _fork(spec: Path, tmp_path: Path, run) -> tuple[Path, Path]:
    """Two run folders holding the same checkpoint of step 100 (``run`` is ``gendsl``).

    Both compared runs start from it, so the comparison is about resuming alone and holds
    whether or not two fresh runs with one seed start from the same weights (see
    ``test_cli_errors.py::test_same_seed_gives_the_same_weights``)."""
    first, second = tmp_path / "straight", tmp_path / "killed"
    ok(run(*_train_args(spec, first, "--data", "moons", "--steps", 100)))
    shutil.copytree(first, second)
    return first, second


def test_resume_after_sigkill_continues_bit_for_bit(gendsl, cli_env, tmp_path):
    spec = tmp_path / "tiny_vp.gen"
    spec.write_text(tiny_diffusion(hidden=16, batch=16, steps=STEPS))
    straight, killed = _fork(spec, tmp_path, gendsl)
    # the spec's train { steps } gives the total; --data comes from the checkpoint's config
    ok(gendsl(*_train_args(spec, straight, "--resume")))

    cmd = [sys.executable, "-m", "gendsl.cli", *_train_args(spec, killed, "--resume")]
    at = _kill_when_checkpoint_passes(cmd, cli_env, killed, KILL_AFTER)
    assert KILL_AFTER <= at < STEPS
    assert _checkpoint(killed)["step"] == at  # the kill left a whole checkpoint behind

    resumed = ok(gendsl(*_train_args(spec, killed, "--resume")))
    assert f"for {STEPS} steps" in resumed.stdout
    assert not list(killed.glob(".checkpoint.pt.*.tmp"))

    a, b = _checkpoint(straight), _checkpoint(killed)
    assert a["step"] == b["step"] == STEPS
    for key in ("model", "ema", "optimizers", "rng"):
        _assert_same_tree(a[key], b[key], key)
    assert _records(straight) == _records(killed)
    assert [r["step"] for r in _records(killed)] == list(range(100, STEPS + 1, 100))


def test_resume_between_log_lines_logs_the_same_losses(tmp_path):
    spec = tmp_path / "tiny_vp.gen"
    spec.write_text(tiny_diffusion(hidden=8, batch=8))

    def run(*args: str) -> subprocess.CompletedProcess:  # in-process: no start-up cost
        return subprocess.CompletedProcess(args, main(list(args)), "", "")

    straight, split = _fork(spec, tmp_path, run)
    ok(run(*_train_args(spec, straight, "--resume", "--steps", 300)))
    ok(run(*_train_args(spec, split, "--resume", "--steps", 250)))
    ok(run(*_train_args(spec, split, "--resume", "--steps", 300)))
    _assert_same_tree(_checkpoint(straight)["model"], _checkpoint(split)["model"], "model")
    # the split run also logged its end at step 250; every step both logged must agree
    logged = {r["step"]: r for r in _records(split)}
    assert _records(straight) == [logged[r["step"]] for r in _records(straight)]
