"""Every stdlib spec through the command line: ``train`` (a few steps, held-out evaluation on),
then ``sample`` and ``eval`` of the run.

Tiny step counts and batches: this checks that each family's path through the CLI works (no
exit 3, finite metrics), not what it learns.  Conditional specs are sampled for a label and
evaluated on the data's own labels; the consistency-distillation teacher and the ControlNet
base are a VP SDE trained here first.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from cli_support import STDLIB

from gendsl.analysis import load_checked
from gendsl.cli import main

torch.set_num_threads(1)

SPECS = sorted(p.stem for p in STDLIB.glob("*.gen"))
#: The data each spec is declared for (the rest: the 2-D, labelled moons).
DATA = {
    "vae": "digits_binary",
    "beta_vae": "digits_binary",
    "iwae": "digits_binary",
    "discrete_vae": "digits_binary",
    "vqvae": "digits_image",
}
#: Pretrained runs: flag -> the stdlib spec of the run it names.
NEEDS = {"consistency_distillation": ("--teacher", "vp_sde"), "controlnet": ("--base", "vp_sde")}


def _train(spec: str, out: Path, *extra: str) -> int:
    data = DATA.get(spec, "moons")
    argv = ["train", str(STDLIB / f"{spec}.gen"), "--data", data, "--out", str(out)]
    return main([*argv, "--steps", "2", "--batch-size", "16", "--no-progress", *extra])


@pytest.fixture(scope="module")
def vp_sde_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("base") / "vp_sde"
    assert _train("vp_sde", out) == 0
    return out


def test_the_stdlib_list_is_complete():
    assert len(SPECS) >= 31 and {"vae", "cfg", "consistency_training", "glow"} <= set(SPECS)


@pytest.mark.parametrize("spec", SPECS)
def test_every_stdlib_spec_trains_samples_and_evaluates(spec, tmp_path, capsys, request):
    extra: list[str] = []
    if spec in NEEDS:
        flag, _ = NEEDS[spec]
        extra = [flag, str(request.getfixturevalue("vp_sde_run"))]
    run = tmp_path / spec
    assert _train(spec, run, *extra) == 0, capsys.readouterr().err
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert records[-1]["step"] == 2 and math.isfinite(records[-1]["eval_loss"])

    checked = load_checked(str(STDLIB / f"{spec}.gen"))
    conditions = [f"--condition={v.name}=1" for v in checked.condition_vars()]
    out = tmp_path / "samples.npy"
    assert main(["sample", str(run), "-n", "4", "--out", str(out), *conditions]) == 0, (
        capsys.readouterr().err
    )
    samples = np.load(out)
    assert len(samples) == 4 and np.isfinite(samples).all()

    capsys.readouterr()
    assert main(["eval", str(run), "-n", "8", "--json"]) == 0, capsys.readouterr().err
    results = json.loads(capsys.readouterr().out)
    assert results["n"] == 8 and all(math.isfinite(v) for v in results.values())
    assert {"w2", "mmd", "precision", "recall"} <= set(results)
    if checked.family == "latent":
        assert "neg_elbo_nats" in results
