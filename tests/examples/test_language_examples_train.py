"""Two language examples from the command line, a few training steps each on the data their
README row names (their numbers come from ``benchmarks/language_examples.py``): the mixture-prior
VAE, and the JEM example as a classifier.  The other language examples train in tests/cli/:
cgan_digits and conditional_ebm_digits in test_cli_conditional_gan_ebm.py, nvae_residual_digits
in test_cli_nvae_residual.py, vqvae2_fontdigits in test_cli_vqvae2_fontdigits.py. The baselines
the benchmark derives from example text still check."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from gendsl.cli import main
from gendsl.data import as_float, load_dataset
from gendsl.runs import open_run

torch.set_num_threads(1)

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _train(name: str, data: str, out: Path) -> Path:
    argv = ["train", str(EXAMPLES / f"{name}.gen"), "--data", data, "--out", str(out)]
    assert main([*argv, "--steps", "4", "--batch-size", "16", "--no-progress"]) == 0
    return out


def test_gmm_prior_vae_trains_and_bounds_the_binary_digits_below_zero(tmp_path):
    """On binary data log p(x) <= 0 (a probability), so the held-out ELBO and L_64 must be
    finite and negative, and samples of the Bernoulli decoder are 0/1 digits."""
    run = _train("gmm_prior_vae", "digits_binary", tmp_path / "run")
    model, config = open_run(run, device="cpu")
    assert config["settings"]["steps"] == 4
    test = as_float(load_dataset("digits_binary", split="test").x[:50])
    with torch.no_grad():
        torch.manual_seed(0)
        elbo, l64 = model.elbo(test), model.iwae(test, 64)
    assert elbo.shape == l64.shape == (50,)
    assert torch.isfinite(elbo).all() and torch.isfinite(l64).all()
    assert (elbo < 0).all() and (l64 < 0).all()
    out = tmp_path / "s.npy"
    assert main(["sample", str(run), "-n", "6", "--seed", "1", "--out", str(out)]) == 0
    samples = np.load(out)
    assert samples.shape == (6, 64) and set(np.unique(samples)) <= {0.0, 1.0}


def test_the_jem_example_is_a_classifier_over_the_ten_digits(tmp_path):
    """JEM's p(y | x) = softmax f(x): ten log-probabilities per digit that sum to one, and the
    energy of (x, y) is -f(x)[y]."""
    model, _ = open_run(_train("conditional_ebm_digits", "digits", tmp_path / "run"), device="cpu")
    x = as_float(load_dataset("digits", split="test").x[:8])
    y = torch.arange(8) % 10
    with torch.no_grad():
        log_p, logits = model.class_log_probs(x), model.logits(x)
        energy = model.energy(x, y)
    assert log_p.shape == (8, 10)
    assert torch.allclose(log_p.exp().sum(-1), torch.ones(8), atol=1e-5)
    assert torch.allclose(energy, -logits[torch.arange(8), y])


def test_the_benchmark_baselines_are_their_examples_less_the_feature(monkeypatch):
    """benchmarks/language_examples.py derives two baselines by editing spec text; they must
    still check, with the mixture prior replaced by N(0, 1) and the label removed."""
    import importlib.util
    import sys

    from gendsl.analysis import load_checked

    path = EXAMPLES.parent / "benchmarks" / "language_examples.py"
    spec = importlib.util.spec_from_file_location("language_examples", path)
    bench = importlib.util.module_from_spec(spec)
    monkeypatch.setattr(sys, "path", list(sys.path))  # the script puts benchmarks/ on it
    monkeypatch.setitem(sys.modules, spec.name, bench)  # its dataclasses look themselves up
    spec.loader.exec_module(bench)
    vae = load_checked(bench.normal_prior_vae(), None)
    assert (vae.name, vae.family, vae.loss.name) == ("normal_prior_vae", "latent", "elbo")
    assert "Normal(0, 1)" in vae.source.text and "GaussianMixture" not in vae.source.text
    gan = load_checked(bench.unconditional_gan(), None)
    assert (gan.family, gan.loss.name, gan.conditional) == ("adversarial", "hinge", False)
