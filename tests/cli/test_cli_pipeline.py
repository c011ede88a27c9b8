"""``gendsl train``, ``sample``, ``eval`` and ``compile`` end to end, in subprocesses.

Two runs are trained once per module: the stdlib VAE on binarised digits and a small VP SDE on
moons, 300 steps each.  Their quality is judged against baselines computed here independently:
the best fully factorised Bernoulli model of the digits, and the Gaussian with the moons' mean
and covariance (its exact NLL and the exact W2 of its samples, via POT).
"""

from __future__ import annotations

import itertools
import json
import math
import re
from pathlib import Path

import numpy as np
import ot
import pytest
import torch
from cli_support import STDLIB, ok, tiny_diffusion

from gendsl.data import load_dataset

torch.set_num_threads(1)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
EVAL_KEYS = {"n", "w2", "sliced_w2", "mmd", "precision", "recall"}


def _png_size(path: Path) -> tuple[int, int]:
    """Width and height from a PNG's IHDR chunk (after checking the signature)."""
    raw = path.read_bytes()
    assert raw[:8] == PNG_MAGIC and raw[12:16] == b"IHDR"
    return int.from_bytes(raw[16:20], "big"), int.from_bytes(raw[20:24], "big")


def _mlp_params(sizes: list[int]) -> int:
    """Weights and biases of a fully connected stack with these layer widths."""
    return sum(a * b + b for a, b in itertools.pairwise(sizes))


# ----------------------------------------------------------------------------- VAE on digits


@pytest.fixture(scope="module")
def vae_run(gendsl, tmp_path_factory):
    out = tmp_path_factory.mktemp("vae") / "run"
    result = ok(
        gendsl(
            "train", STDLIB / "vae.gen", "--data", "digits_binary", "--steps", 300, "--out", out
        )
    )
    return out, result


def test_vae_train_reports_progress_and_writes_metrics(vae_run):
    out, result = vae_run
    assert "trained vae for 300 steps" in result.stdout
    # the progress bar: position, elapsed<ETA, rate in steps/s and the running loss
    bar = re.findall(
        r"(\d+)/300 \[[\d:]+<[\d:?]+, +[\d.?]+ ?(?:step/s|s/step), loss=([\d.]+)", result.stderr
    )
    assert bar, result.stderr[-2000:]
    assert bar[-1][0] == "300"
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [100, 200, 300]
    losses = [r["loss"] for r in records]
    assert all(math.isfinite(v) for v in losses) and losses[-1] < losses[0]
    assert all(r["steps_per_s"] > 0 and r["lr"] == 0.001 for r in records)
    assert math.isfinite(records[-1]["eval_loss"])  # held-out evaluation at the last step
    assert float(bar[-1][1]) == pytest.approx(losses[-1], rel=1e-3)


def test_vae_checkpoint_holds_everything_and_loads_weights_only(vae_run):
    out, _ = vae_run
    state = torch.load(out / "checkpoint.pt", map_location="cpu", weights_only=True)
    assert state["step"] == 300
    assert state["spec"] == (STDLIB / "vae.gen").read_text() == (out / "spec.gen").read_text()
    assert state["versions"]["torch"] == torch.__version__
    assert {"torch", "numpy", "python", "batches"} <= set(state["rng"])
    (opt,) = state["optimizers"].values()
    assert all(int(s["step"]) == 300 for s in opt["state"].values())
    assert all(torch.isfinite(v).all() for v in state["model"].values())
    settings = state["config"]["settings"]
    # no flag but --steps: the spec's train { } gives batch and lr
    assert (settings["steps"], settings["batch_size"], settings["lr"]) == (300, 128, 0.001)
    assert state["config"]["bindings"] == {"D": 64}


def test_vae_sample_writes_binary_npy_and_png(vae_run, gendsl, tmp_path):
    out, _ = vae_run
    npy, png = tmp_path / "s.npy", tmp_path / "s.png"
    ok(gendsl("sample", out, "-n", 16, "--out", npy, "--plot", png))
    samples = np.load(npy)
    assert samples.shape == (16, 64)
    assert set(np.unique(samples)) <= {0.0, 1.0} and 0 < samples.mean() < 1
    width, height = _png_size(png)
    assert width > 100 and height > 100


def test_vae_eval_beats_the_best_factorised_bernoulli(vae_run, gendsl):
    out, _ = vae_run
    results = json.loads(ok(gendsl("eval", out, "--json", "-n", 300)).stdout)
    assert EVAL_KEYS | {"neg_elbo_nats", "neg_elbo_bits_per_dim", "digits_fd"} <= set(results)
    assert results["n"] == 300
    neg_elbo = results["neg_elbo_nats"]
    assert math.isfinite(neg_elbo)
    assert results["neg_elbo_bits_per_dim"] == pytest.approx(neg_elbo / (64 * math.log(2)))
    # per-pixel Bernoulli with the training frequencies (Laplace smoothed): the best model
    # without latent structure; an untrained decoder (logits near 0) costs ~64 log 2 = 44 nats.
    train = load_dataset("digits_binary", split="train").x.double()
    test = load_dataset("digits_binary", split="test").x.double()
    p = (train.sum(0) + 1) / (len(train) + 2)
    factorised = -(test * p.log() + (1 - test) * (1 - p).log()).sum(1).mean().item()
    assert neg_elbo < factorised < 64 * math.log(2)


def test_compile_describes_the_bound_model(gendsl):
    text = ok(gendsl("compile", STDLIB / "vae.gen", "--data", "digits_binary")).stdout
    assert "Bernoulli" in text and "elbo" in text
    enc = _mlp_params([64, 256, 256, 2 * 16])  # loc and scale of q(z | x)
    dec = _mlp_params([16, 256, 256, 64])
    assert f"{enc} parameters" in text and f"{dec} parameters" in text
    assert re.search(rf"parameters: {enc + dec}\b", text)


# ----------------------------------------------------------------------------- VP SDE on moons


@pytest.fixture(scope="module")
def moons_run(gendsl, tmp_path_factory):
    folder = tmp_path_factory.mktemp("moons")
    spec = folder / "tiny_vp.gen"
    spec.write_text(tiny_diffusion(hidden=128, batch=128, lr=0.005))
    out = folder / "run"
    ok(gendsl("train", spec, "--data", "moons", "--steps", 300, "--out", out, "--no-progress"))
    return out


def _fitted_gaussian() -> tuple[torch.Tensor, torch.Tensor]:
    train = load_dataset("moons", split="train", seed=0).x.double()
    return train.mean(0), torch.cov(train.T)


def test_moons_sample_shape_and_plot(moons_run, gendsl, tmp_path):
    npy, png = tmp_path / "s.npy", tmp_path / "s.png"
    ok(gendsl("sample", moons_run, "-n", 200, "--out", npy, "--plot", png, "--seed", 3))
    samples = np.load(npy)
    assert samples.shape == (200, 2) and np.isfinite(samples).all()
    assert samples.std(0).min() > 0.3 and samples.std(0).max() < 2.0  # moons: std ~ (1.05, 0.61)
    _png_size(png)


def test_eval_without_likelihood_reports_the_same_sample_metrics(moons_run, gendsl):
    """``--no-likelihood`` leaves out the PF-ODE NLL and the SDE ELBO and nothing else: the
    samples, drawn from the same seed, score what they score with them."""
    args = ("eval", moons_run, "--json", "-n", 200)
    full = json.loads(ok(gendsl(*args)).stdout)
    quick = json.loads(ok(gendsl(*args, "--no-likelihood")).stdout)
    bounds = {"nll_nats", "nll_bits_per_dim", "sde_neg_elbo_nats", "sde_neg_elbo_bits_per_dim"}
    assert bounds <= set(full) and not bounds & set(quick)
    assert quick == {k: v for k, v in full.items() if k not in bounds}


def test_moons_eval_beats_the_fitted_gaussian(moons_run, gendsl):
    n = 500
    results = json.loads(ok(gendsl("eval", moons_run, "--json", "-n", n)).stdout)
    assert EVAL_KEYS | {"nll_nats", "nll_bits_per_dim", "nfe"} <= set(results)
    assert results["nfe"] == 20  # dpm_solver(steps = 20) of the spec
    test = load_dataset("moons", split="test", seed=0, n=n).x.double()
    mean, cov = _fitted_gaussian()
    gaussian = torch.distributions.MultivariateNormal(mean, cov)
    # exact NLL of the held-out points under the Gaussian fit vs the PF-ODE NLL of the model
    assert results["nll_nats"] < -gaussian.log_prob(test).mean().item()
    # exact W2 (network simplex) between Gaussian samples and the same held-out points
    torch.manual_seed(0)
    fake = gaussian.sample((n,))
    weights = np.full(n, 1.0 / n)
    w2_gaussian = math.sqrt(ot.emd2(weights, weights, ot.dist(fake.numpy(), test.numpy())))
    assert results["w2"] < w2_gaussian
