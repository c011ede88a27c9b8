"""Every user mistake is exit 1 (spec/data/training) or 2 (usage) with a message that says what
was wrong and what to do; never exit 3, never torch's advice to disable ``weights_only``.

In-process (:func:`gendsl.cli.main`) against one tiny 2-D run; one subprocess checks that the
argument checks run before torch is imported.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from cli_support import STDLIB, tiny_diffusion

from gendsl.cli import main

torch.set_num_threads(1)

AFTER = "; pass a run folder written by gendsl train (or train the run again)\n"


@pytest.fixture(scope="module")
def place(tmp_path_factory) -> Path:
    """A folder with a trained 2-D run ``run``, its spec and broken checkpoint files."""
    root = tmp_path_factory.mktemp("place")
    spec = root / "tiny.gen"
    spec.write_text(tiny_diffusion(hidden=8, steps=3, batch=8))
    assert main(["train", str(spec), "--data", "moons", "--out", str(root / "run")]) == 0
    good = (root / "run" / "checkpoint.pt").read_bytes()
    (root / "truncated.pt").write_bytes(good[: len(good) // 2])
    (root / "random.pt").write_bytes(bytes(range(256)) * 8)
    (root / "empty.pt").write_bytes(b"")
    torch.save([torch.zeros(2)], root / "foreign.pt")
    torch.save({"format": 1, "args": argparse.Namespace(a=1)}, root / "unsafe.pt")
    torch.save({"format": 1, "model": {}}, root / "partial.pt")
    (root / "a_file").write_text("not a folder")
    return root


CASES = [
    # (argv, exit code, the whole of stderr); {p} is the folder of the fixture
    (
        ["sample", str(STDLIB / "vae.gen")],
        2,
        f"gendsl: error: {STDLIB / 'vae.gen'} is a spec, not a trained run; train it first "
        f"(gendsl train {STDLIB / 'vae.gen'} --data NAME --out runs/NAME), then pass the run "
        "folder\n",
    ),
    (
        ["sample", "{p}/run", "--seed", "-1"],
        2,
        "gendsl: error: --seed must lie in [0, 2**32), got -1\n",
    ),
    (
        ["train", "{p}/tiny.gen", "--data", "moons", "--seed", "-1", "--out", "{p}/new"],
        2,
        "gendsl: error: --seed must lie in [0, 2**32), got -1\n",
    ),
    (["eval", "{p}/run", "-n", "0"], 2, "gendsl: error: -n must be at least 4, got 0\n"),
    (["sample", "{p}/run", "-n", "0"], 2, "gendsl: error: -n must be at least 1, got 0\n"),
    (
        ["sample", "{p}/run", "--steps", "0"],
        2,
        "gendsl: error: --steps must be at least 1, got 0\n",
    ),
    (
        ["eval", "{p}/run", "--data", "digits"],
        1,
        "{p}/tiny.gen:3:8: error: data x is declared real[D] but digits has samples of shape "
        "[64] (D is already 2 but axis 0 has size 64)\n",
    ),
    (
        ["train", "{p}/tiny.gen", "--data", "moons", "--out", "{p}/a_file"],
        2,
        "gendsl: error: --out {p}/a_file is a file; a run is a folder: name a new folder or an "
        "existing run\n",
    ),
    (
        ["train", "{p}/tiny.gen", "--data", "moons", "--out", "{p}/a_file/run"],
        2,
        "gendsl: error: --out {p}/a_file/run: {p}/a_file is a file, not a folder; choose "
        "another path\n",
    ),
    (
        ["sample", "{p}/run", "--plot", "{p}/missing/x.png"],
        2,
        "gendsl: error: --plot {p}/missing/x.png: no folder {p}/missing; create it first\n",
    ),
    (
        ["sample", "{p}/run", "--plot", "{p}/x.xyz"],
        2,
        "gendsl: error: --plot {p}/x.xyz: unknown file type '.xyz'; use one of .png, .pdf, .svg\n",
    ),
    (
        ["sample", "{p}/run", "--out", "{p}/x.txt"],
        2,
        "gendsl: error: --out {p}/x.txt: unknown file type '.txt'; use one of .npy, .npz, .pt\n",
    ),
    (
        ["sample", "{p}/run", "--out", "{p}/run/checkpoint.pt"],
        2,
        "gendsl: error: --out {p}/run/checkpoint.pt would overwrite a file of the run in "
        "{p}/run\n",
    ),
    (
        ["sample", "{p}/run", "--out", "{p}/run"],
        2,
        "gendsl: error: --out {p}/run: unknown file type '(none)'; use one of .npy, .npz, .pt\n",
    ),
    (
        ["sample", "{p}/truncated.pt"],
        2,
        "gendsl: error: cannot read the checkpoint '{p}/truncated.pt': it is truncated, corrupt "
        "or not a torch file" + AFTER,
    ),
    (
        ["sample", "{p}/random.pt"],
        2,
        "gendsl: error: cannot read the checkpoint '{p}/random.pt': it is truncated, corrupt "
        "or not a torch file" + AFTER,
    ),
    (
        ["eval", "{p}/empty.pt"],
        2,
        "gendsl: error: cannot read the checkpoint '{p}/empty.pt': it is empty" + AFTER,
    ),
    (
        ["sample", "{p}/foreign.pt"],
        2,
        "gendsl: error: cannot read the checkpoint '{p}/foreign.pt': it is not a gendsl "
        "checkpoint (format 1)" + AFTER,
    ),
    (
        ["sample", "{p}/unsafe.pt"],
        2,
        "gendsl: error: cannot read the checkpoint '{p}/unsafe.pt': it holds objects other than "
        "tensors and plain values, which gendsl never loads (loading them could run code)" + AFTER,
    ),
    (
        ["sample", "{p}/partial.pt"],
        2,
        "gendsl: error: cannot read the checkpoint '{p}/partial.pt': it lacks the entries step, "
        "ema, optimizers, rng, spec, config" + AFTER,
    ),
    (
        ["sample", "{p}/run/metrics.jsonl"],
        2,
        "gendsl: error: cannot read the checkpoint '{p}/run/metrics.jsonl': it is truncated, "
        "corrupt or not a torch file" + AFTER,
    ),
    (
        ["sample", "{p}"],
        2,
        "gendsl: error: {p} holds no checkpoint.pt: not a run folder; train first with gendsl "
        "train\n",
    ),
    (
        ["sample", "{p}/no_such_run"],
        2,
        "gendsl: error: no run at {p}/no_such_run: expected a run folder or a checkpoint file\n",
    ),
    (
        ["sample", "{p}/run", "--condition", "y=1"],
        2,
        "gendsl: error: --condition y: model tiny_vp declares no condition 'y' (its conditions: "
        "none)\n",
    ),
    (
        ["sample", "{p}/run", "--guidance-scale", "2"],
        2,
        "gendsl: error: --guidance-scale applies to guided models (classifier_free, "
        "classifier); model tiny_vp has no guidance scale\n",
    ),
    (
        ["sample", "{p}/run", "--guidance-scale", "nan"],
        2,
        "gendsl: error: --guidance-scale must be a finite number, got nan\n",
    ),
    (
        ["train", "{p}/tiny.gen", "--data", "moons", "--lr", "inf", "--out", "{p}/new"],
        2,
        "gendsl: error: --lr must be a positive number, got inf\n",
    ),
    (
        ["train", "{p}", "--data", "moons"],
        2,
        "gendsl: error: {p} is a folder; gendsl train takes a .gen spec file\n",
    ),
    (
        [
            "train",
            str(STDLIB / "consistency_training.gen"),
            "--data",
            "moons",
            "--teacher",
            "{p}/run",
            "--out",
            "{p}/new",
        ],
        2,
        "gendsl: error: --teacher applies only to a consistency model distilled from a teacher; "
        "model consistency_training is not one\n",
    ),
    (
        ["train", "{p}/tiny.gen", "--data", "moons", "--base", "{p}/run", "--out", "{p}/new"],
        2,
        "gendsl: error: --base applies only to a ControlNet (guidance control); model tiny_vp "
        "is not one\n",
    ),
    pytest.param(
        ["train", "{p}/tiny.gen", "--data", "moons", "--out", "{p}/new", "--device", "mps"],
        2,
        "gendsl: error: device 'mps' requested but MPS is not available\n",
        marks=pytest.mark.skipif(torch.backends.mps.is_available(), reason="MPS is available"),
    ),
    (
        ["train", "{p}/tiny.gen", "--out", "{p}/new"],
        2,
        "gendsl: error: --data is required: a bundled set (moons, digits, digits_binary, ...) or "
        "a file/folder\n",
    ),
    (
        ["train", "{p}/tiny.gen", "--data", "moons", "--out", "{p}/new", "--resume"],
        2,
        "gendsl: error: --resume: no checkpoint at {p}/new/checkpoint.pt; train without "
        "--resume first\n",
    ),
    (
        [
            "train",
            str(STDLIB / "consistency_distillation.gen"),
            "--data",
            "moons",
            "--out",
            "{p}/new",
        ],
        2,
        "gendsl: error: model consistency_distillation needs a trained run of its teacher "
        "'vp_sde': pass --teacher RUN\n",
    ),
    (
        [
            "train",
            str(STDLIB / "controlnet.gen"),
            "--data",
            "moons",
            "--base",
            "{p}/run",
            "--out",
            "{p}/new",
        ],
        2,
        "gendsl: error: the base run's network eps does not fit this ControlNet's (its weights "
        "have other shapes); pass a run of the base model 'vp_sde' trained on data of the same "
        "shape\n",
    ),
]


@pytest.mark.parametrize(("argv", "code", "expected"), CASES)
def test_a_user_mistake_gets_its_exit_code_and_message(place, argv, code, expected, capsys):
    argv = [a.replace("{p}", str(place)) for a in argv]
    assert main(argv) == code
    err = capsys.readouterr().err
    assert err == expected.replace("{p}", str(place))
    assert not (place / "new").exists()  # nothing was written


def test_unwritable_out_is_refused_before_anything_is_written(place, monkeypatch, capsys):
    monkeypatch.setattr(os, "access", lambda path, mode: False)  # as for a non-root user
    argv = ["train", str(place / "tiny.gen"), "--data", "moons", "--out", str(place / "new")]
    assert main(argv) == 2
    assert capsys.readouterr().err == (
        f"gendsl: error: --out {place / 'new'}: cannot write in {place} (permission denied)\n"
    )


@pytest.mark.parametrize(
    "argv",
    [
        ["sample", "{p}/run", "--seed", "-1"],
        ["eval", "{p}/run", "-n", "0"],
        ["train", "{p}/tiny.gen", "--data", "moons", "--out", "{p}/run"],
        ["sample", "{p}/run", "--out", "{p}/x.txt"],
    ],
)
def test_usage_errors_are_found_before_torch_is_imported(place, argv, cli_env):
    argv = [a.replace("{p}", str(place)) for a in argv]
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "gendsl.cli", *argv],
        capture_output=True,
        text=True,
        env=cli_env,
        timeout=120,
    )
    assert result.returncode == 2
    imported = [line.rsplit("|", 1)[-1].strip() for line in result.stderr.splitlines()]
    assert "torch" not in imported and "numpy" not in imported
    assert "gendsl: error:" in result.stderr


def test_samples_are_written_in_the_format_of_the_suffix(place, tmp_path):
    run, arrays = place / "run", {}
    for suffix in (".npy", ".npz", ".pt"):
        out = tmp_path / f"s{suffix}"
        assert main(["sample", str(run), "-n", "5", "--seed", "2", "--out", str(out)]) == 0
        if suffix == ".npy":
            arrays[suffix] = np.load(out)
        elif suffix == ".npz":
            arrays[suffix] = np.load(out)["samples"]
        else:
            arrays[suffix] = torch.load(out, weights_only=True).numpy()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.npy", "s.npz", "s.pt"]
    assert arrays[".npy"].shape == (5, 2)
    assert np.array_equal(arrays[".npy"], arrays[".npz"])
    assert np.array_equal(arrays[".npy"], arrays[".pt"])
