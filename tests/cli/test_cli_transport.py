"""Transport between two data sets (``data x0`` and ``data x1``, ``--source-data``): trains a few
steps from the CLI, keeps its source samples in the checkpoint, samples by carrying source rows
through the flow, evaluates by sample metrics (no likelihood), and refuses a missing or
misplaced ``--source-data`` before anything is written."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from gendsl.cli import main
from gendsl.data import load_dataset
from gendsl.runs import open_run

torch.set_num_threads(1)
REPO = Path(__file__).resolve().parents[2]

SPEC = """\
model moons_to_rings {
  data x0 : real[D]
  data x1 : real[D]
  path x_t = (1 - t) * x0 + t * x1
  couple x0, x1 by ot(method = exact)
  net v = MLP(hidden = [16], time = concat)
  predict velocity = v(x_t, t)
  loss flow_matching
  sample with ode(method = euler, steps = 4)
}
"""


def _train(tmp_path, *extra: str) -> int:
    spec = tmp_path / "t.gen"
    spec.write_text(SPEC)
    argv = ["train", str(spec), "--data", "rings", "--steps", "3", "--batch-size", "32"]
    return main([*argv, "--out", str(tmp_path / "run"), "--no-progress", *extra])


def test_a_data_to_data_flow_trains_samples_and_evaluates(tmp_path, capsys):
    assert _train(tmp_path, "--source-data", "moons") == 0
    model, config = open_run(tmp_path / "run", device="cpu")
    assert config["source_data"] == "moons"
    # the source samples travel in the checkpoint: the train split of moons (seed 0 + 1)
    moons = load_dataset("moons", split="train", seed=1, n=len(model.source_data))
    torch.testing.assert_close(model.source_data, moons.x.to(model.source_data.dtype))
    # a source draw is a row of the source set
    x0 = model.draw_source(5, generator=torch.Generator().manual_seed(0))
    assert all(bool((model.source_data == row).all(1).any()) for row in x0)
    # a sample is Φ(x0) for those rows: the same generator gives the transported rows
    x1 = model.sample(5, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(x1, model.transport(x0))
    assert not model.capabilities.likelihood
    out = tmp_path / "s.npy"
    assert main(["sample", str(tmp_path / "run"), "-n", "7", "--out", str(out)]) == 0
    assert np.load(out).shape == (7, 2)
    capsys.readouterr()
    assert main(["eval", str(tmp_path / "run"), "--n", "64", "--json"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert np.isfinite(metrics["w2"]) and "nll" not in metrics


def test_a_data_source_without_source_data_is_refused_before_anything_is_written(
    tmp_path, capsys
):
    assert _train(tmp_path) == 2
    err = capsys.readouterr().err
    assert "model moons_to_rings transports from the data x0: pass --source-data NAME" in err
    assert not (tmp_path / "run").exists()


def test_source_data_for_a_model_without_a_data_source_is_refused(tmp_path, capsys):
    spec = tmp_path / "fm.gen"
    spec.write_text('import "stdlib/flow_matching.gen"\nmodel fm extends flow_matching {}\n')
    argv = ["train", str(spec), "--data", "moons", "--source-data", "rings", "--steps", "1"]
    assert main([*argv, "--out", str(tmp_path / "run"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "--source-data applies only to a flow-matching model whose source x0 is" in err
    assert not (tmp_path / "run").exists()


def test_a_batch_that_carries_x0_is_paired_as_given(tmp_path):
    """model.loss({"x0": ..., "x1": ...}) uses the given rows: with the noiseless straight path
    the loss is E_t ‖v(x_t, t) − (x1 − x0)‖², so the gradient of the loss with a zero network is
    the same whatever the source buffer holds."""
    from gendsl.lower import load

    model = load(SPEC.replace("ot(method = exact)", "independent"), D=2)
    x0, x1 = torch.randn(8, 2), torch.randn(8, 2)
    torch.nn.init.zeros_(model.nets["v"].body[-1].weight)
    torch.nn.init.zeros_(model.nets["v"].body[-1].bias)
    with torch.no_grad():
        loss = model.loss({"x0": x0, "x1": x1})
    torch.testing.assert_close(loss, (x1 - x0).pow(2).sum(1).mean())


def test_resume_keeps_the_source_data_and_refuses_another(tmp_path, capsys):
    assert _train(tmp_path, "--source-data", "moons") == 0
    assert _train(tmp_path, "--resume", "--source-data", "8gaussians") == 2
    assert "was trained with --source-data moons, not 8gaussians" in capsys.readouterr().err
    spec = tmp_path / "t.gen"
    argv = ["train", str(spec), "--steps", "5", "--out", str(tmp_path / "run"), "--resume"]
    assert main([*argv, "--no-progress"]) == 0  # data and source data from the run
    assert "trained moons_to_rings for 5 steps" in capsys.readouterr().out
    model, config = open_run(tmp_path / "run", device="cpu")
    assert config["source_data"] == "moons" and config["data"] == "rings"
    assert len(model.source_data) > 0


def test_the_example_trains_from_eight_gaussians_to_moons(tmp_path):
    out = tmp_path / "run"
    spec = REPO / "examples" / "ot_cfm_8gaussians_moons.gen"
    argv = ["train", str(spec), "--data", "moons", "--steps", "2"]
    argv += ["--source-data", "8gaussians", "--batch-size", "32", "--out", str(out)]
    assert main([*argv, "--no-progress"]) == 0
    assert main(["sample", str(out), "-n", "4", "--out", str(tmp_path / "s.npy")]) == 0
    assert np.load(tmp_path / "s.npy").shape == (4, 2)
