"""A two-level Glow with learned priors (``split(prior = learned)``, ``learntop``) trains on the
8x8 digits through the CLI: the held-out bits/dim is finite and falls over a few steps, the
priors move off zero, and ``sample`` writes images of the data's shape."""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import torch

from gendsl.cli import main
from gendsl.lower.flow_priors import LearnedTop, SplitPrior
from gendsl.runs import open_run

torch.set_num_threads(1)

STEP = (
    "actnorm; invconv(lu = true); "
    "affine_coupling(mask = half, net = ConvNet(channels = [16], activation = relu, "
    "zero_out = true))"
)
SPEC = f"""\
model glow8 {{
  data x : image[1, 8, 8]
  latent z : real[64]
  z ~ Normal(0, 1)
  flow f {{
    squeeze
    repeat 2 {{ {STEP} }}
    split(prior = learned)
    squeeze
    repeat 2 {{ {STEP} }}
    learntop
  }}
  x = f(z)
  loss nll
  train {{
    steps = 30
    batch = 64
    lr = 0.003
  }}
}}
"""


def test_glow_with_learned_priors_trains_on_digits(tmp_path):
    spec, out = tmp_path / "glow8.gen", tmp_path / "run"
    spec.write_text(SPEC)
    argv = ["train", str(spec), "--data", "digits_image", "--out", str(out), "--no-progress"]
    assert main([*argv, "--eval-every", "10"]) == 0
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    # eval_loss: the held-out dequantised NLL in nats per image (same dequantisation draw
    # at every evaluation); bits/dim divides by D log 2.
    bpd = [r["eval_loss"] / (64 * math.log(2)) for r in rows if "eval_loss" in r]
    assert len(bpd) == 3 and all(math.isfinite(b) for b in bpd)
    assert all(a > b for a, b in itertools.pairwise(bpd)) and bpd[-1] < bpd[0] - 0.1, bpd
    model, _ = open_run(out, device="cpu")
    layers = [m for m in model.modules() if isinstance(m, (SplitPrior, LearnedTop))]
    priors = [p for m in layers for p in m.parameters()]
    assert len(layers) == 2 and len(priors) == 5  # conv weight, bias, logs; top mean, log σ
    assert all(p.abs().sum() > 0 for p in priors)  # all trained off their zero start
    samples = tmp_path / "s.npy"
    assert main(["sample", str(out), "-n", "5", "--out", str(samples), "--seed", "1"]) == 0
    x = np.load(samples)
    assert x.shape == (5, 1, 8, 8) and np.isfinite(x).all()
