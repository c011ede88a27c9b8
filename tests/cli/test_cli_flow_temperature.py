"""``gendsl sample/eval --temperature T``: a flow's samples at temperature T, the same as the
model's sampler with that option; refused with a usage error outside its range or for a family
whose sampler declares no temperature."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import gendsl.lower as L
from gendsl.cli import main
from gendsl.errors import UsageError
from gendsl.run_sampling import check_sampler_option, draw
from gendsl.runs import open_run

FLOW = """\
model tiny_flow {
  data x : real[2]
  latent z : real[2]
  z ~ Normal(0, 1)
  flow f {
    affine_coupling(mask = alternate, net = MLP(hidden = [8]))
    reverse
  }
  x = f(z)
  loss nll
  train {
    steps = 2
    batch = 16
  }
}
"""

DIFFUSION = """\
model tiny_vp {
  data x : real[2]
  let beta(t) = 0.1 + 19.9 * t
  sde dx = -0.5 * beta(t) * x * dt + sqrt(beta(t)) * dw, t in [0, 1]
  net eps = MLP(hidden = [8], time = fourier)
  predict eps = eps(x_t, t)
  loss dsm
}
"""


@pytest.fixture
def flow_run(tmp_path: Path) -> Path:
    (tmp_path / "flow.gen").write_text(FLOW)
    run = tmp_path / "run"
    args = ["train", str(tmp_path / "flow.gen"), "--data", "moons", "--out", str(run)]
    assert main([*args, "--no-progress"]) == 0
    return run


def test_sample_and_eval_take_the_temperature(flow_run: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "s.npy"
    args = ["sample", str(flow_run), "-n", "50", "--temperature", "0.5", "--out", str(out)]
    assert main(args) == 0
    model, _ = open_run(flow_run, device="cpu")
    expected = model.sample(50, generator=torch.Generator().manual_seed(0), temperature=0.5)
    np.testing.assert_array_equal(np.load(out), expected.numpy())
    assert not np.array_equal(np.load(out), draw(model, 50, seed=0).numpy())
    capsys.readouterr()
    args = ["eval", str(flow_run), "-n", "50", "--json", "--temperature", "0.5"]
    assert main(args) == 0
    cold = json.loads(capsys.readouterr().out)
    assert main(args[:-2]) == 0
    warm = json.loads(capsys.readouterr().out)
    assert cold["nll_nats"] == warm["nll_nats"]  # the likelihood is the model's
    assert cold["w2"] != warm["w2"]  # the samples are not


def test_out_of_range_is_a_usage_error(flow_run: Path, capsys) -> None:
    for value in ("0", "-1", "nan"):
        assert main(["sample", str(flow_run), "-n", "5", "--temperature", value]) == 2
        expected = f"--temperature must be > 0; got {float(value)}"
        assert capsys.readouterr().err.strip() == f"gendsl: error: {expected}"


def test_a_family_without_the_option_is_told_which_has_it() -> None:
    model = L.load(DIFFUSION)
    with pytest.raises(UsageError) as info:
        check_sampler_option(model, "temperature", 0.7)
    assert str(info.value) == (
        "--temperature is an option of the flow family's ancestral; model tiny_vp is diffusion"
    )
    with pytest.raises(UsageError, match="--temperature is an option of"):
        draw(model, 4, seed=0, temperature=0.7)
