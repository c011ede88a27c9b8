"""Exit codes and messages of the CLI: data mismatches, usage errors, bad specs, ``--debug``,
divergence, and ``train { }`` defaults under command-line flags.

Most cases call :func:`gendsl.cli.main` in this process (no interpreter start-up per case);
one subprocess checks that the exit code reaches the shell.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from cli_support import STDLIB, tiny_diffusion

import gendsl.cli
from gendsl.cli import main
from gendsl.train import loop

torch.set_num_threads(1)


def _spec(tmp_path: Path, text: str, name: str = "spec.gen") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def _train(tmp_path: Path, spec: Path, *args: str | int) -> int:
    out = tmp_path / "run"
    return main(["train", str(spec), "--out", str(out), "--no-progress", *map(str, args)])


def _state(tmp_path: Path) -> dict:
    return torch.load(tmp_path / "run" / "checkpoint.pt", map_location="cpu", weights_only=True)


# ----------------------------------------------------------------------------- data vs spec


def test_declared_shape_that_does_not_fit_the_data_names_both(tmp_path, capsys):
    spec = _spec(tmp_path, tiny_diffusion(data="real[3]"))
    assert _train(tmp_path, spec, "--data", "moons") == 1
    err = capsys.readouterr().err
    assert "real[3]" in err and "[2]" in err and "moons" in err
    assert "Traceback" not in err
    assert not (tmp_path / "run" / "checkpoint.pt").exists()


def test_binary_declaration_on_continuous_digits_is_a_data_error(tmp_path, capsys):
    assert _train(tmp_path, STDLIB / "vae.gen", "--data", "digits", "--steps", 1) == 1
    err = capsys.readouterr().err
    assert "binary[D]" in err and "digits" in err and re.search(r"vae\.gen:\d+:\d+", err)


# ----------------------------------------------------------------------------- usage errors


def test_unknown_flag_exits_2_from_a_real_process(gendsl):
    result = gendsl("train", STDLIB / "vae.gen", "--data", "moons", "--no-such-flag")
    assert result.returncode == 2
    assert "--no-such-flag" in result.stderr and "usage:" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["train", str(STDLIB / "vae.gen"), "--steps", "1"], "--data is required"),
        (["train", "no_such_spec.gen", "--data", "moons"], "no_such_spec.gen"),
        (["sample", "no_such_run"], "no_such_run"),
        (["fmt", "no_such_spec.gen"], "no_such_spec.gen"),
        (["train", str(STDLIB / "vae.gen"), "--data", "moons", "--steps", "ten"], "ten"),
        (["frobnicate"], "frobnicate"),
        ([], "command"),
    ],
)
def test_usage_errors_exit_2(argv, needle, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err


def test_check_of_a_missing_file_is_a_usage_error(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["check", "no_such_spec.gen"]) == 2
    assert "no_such_spec.gen" in capsys.readouterr().err


# ----------------------------------------------------------------------------- bad specs


BAD_SPEC = "model m {\n  data x : real[2]\n  z ~ Normal(0, 1\n}\n"


@pytest.mark.parametrize(
    ("before", "after"),
    [(["check"], []), (["train"], ["--data", "moons"]), (["--debug", "check"], [])],
)
def test_bad_spec_gives_a_located_diagnostic_without_traceback(before, after, tmp_path, capsys):
    spec = _spec(tmp_path, BAD_SPEC, "bad.gen")
    argv = [*before, str(spec), *after]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert re.search(r"bad\.gen:4:1: error: .*'\)'", err), err
    assert "Traceback" not in err and "please report" not in err


def test_internal_errors_exit_3_and_show_a_traceback_only_with_debug(capsys, monkeypatch):
    def broken(args):
        raise RuntimeError("boom")

    monkeypatch.setattr(gendsl.cli, "cmd_check", broken)
    spec = str(STDLIB / "vae.gen")
    assert main(["check", spec]) == 3
    err = capsys.readouterr().err
    assert "please report" in err and "RuntimeError: boom" in err and "Traceback" not in err
    assert main(["--debug", "check", spec]) == 3
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err and "RuntimeError: boom" in err


# ----------------------------------------------------------------------------- train { } vs flags


def test_train_block_gives_defaults_and_flags_override_them(tmp_path, capsys):
    spec = _spec(tmp_path, tiny_diffusion(hidden=8, steps=30, batch=16, lr=0.002))
    assert _train(tmp_path, spec, "--data", "moons") == 0
    state = _state(tmp_path)
    assert state["step"] == 30
    settings = state["config"]["settings"]
    assert (settings["steps"], settings["batch_size"], settings["lr"]) == (30, 16, 0.002)
    (opt,) = state["optimizers"].values()
    assert opt["param_groups"][0]["lr"] == 0.002

    assert _train(tmp_path / "b", spec, "--data", "moons", "--steps", 20, "--lr", 0.01) == 0
    state = _state(tmp_path / "b")
    assert state["step"] == 20
    settings = state["config"]["settings"]
    assert (settings["steps"], settings["batch_size"], settings["lr"]) == (20, 16, 0.01)
    (opt,) = state["optimizers"].values()
    assert opt["param_groups"][0]["lr"] == 0.01
    assert all(int(s["step"]) == 20 for s in opt["state"].values())
    assert "for 20 steps" in capsys.readouterr().out


def test_same_seed_gives_the_same_weights(tmp_path):
    spec = _spec(tmp_path, tiny_diffusion(hidden=8, steps=1, batch=8))
    assert _train(tmp_path / "a", spec, "--data", "moons", "--seed", 5) == 0
    torch.rand(3)  # whatever ran before must not matter
    assert _train(tmp_path / "b", spec, "--data", "moons", "--seed", 5) == 0
    a, b = _state(tmp_path / "a")["model"], _state(tmp_path / "b")["model"]
    assert [k for k in a if not torch.equal(a[k], b[k])] == []


# ----------------------------------------------------------------------------- divergence


def test_divergence_names_the_step_and_keeps_the_last_checkpoint(tmp_path, capsys, monkeypatch):
    saved: list[bytes] = []

    def recording_save(path, payload):
        written = save(path, payload)
        saved.append(Path(path).read_bytes())
        return written

    save = loop.save_checkpoint
    monkeypatch.setattr(loop, "save_checkpoint", recording_save)
    spec = _spec(tmp_path, tiny_diffusion(hidden=8, steps=50, batch=8))
    args = ("--data", "moons", "--lr", "1e30", "--checkpoint-every", 1)
    assert _train(tmp_path, spec, *args) == 1
    err = capsys.readouterr().err
    match = re.search(r"diverged at step (\d+)", err)
    assert match, err
    step = int(match.group(1))
    assert 1 < step <= 50 and len(saved) == step - 1  # one checkpoint per good step
    path = tmp_path / "run" / "checkpoint.pt"
    assert path.read_bytes() == saved[-1]  # the last good checkpoint, byte for byte
    state = _state(tmp_path)
    assert state["step"] == step - 1
    assert all(torch.isfinite(v).all() for v in state["model"].values())
    assert f"step {step - 1}" in err and "Traceback" not in err
