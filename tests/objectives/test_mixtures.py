"""``GaussianMixture(weights, locs, scales)``: its log-density is the hand-written
logsumexp_k(log π_k + log N(x; μ_k, σ_k² I)), its draws have the mixture's moments, a list of
lists names one component per inner list, and a VAE with a mixture prior trains from the CLI
with a Monte Carlo KL that ``gendsl derive`` announces."""

from __future__ import annotations

import math

import numpy as np
import torch

from gendsl.cli import main
from gendsl.objectives.densities import draw, make_dist

torch.set_num_threads(1)
LIKE = torch.zeros((), dtype=torch.float64)


def by_hand(x: list[float], weights, locs, scales) -> float:
    """log Σ_k π_k Π_d N(x_d; μ_kd, σ_k²), with math only."""
    total = sum(weights)
    terms = []
    for w, mu, s in zip(weights, locs, scales, strict=True):
        log_n = sum(
            -((xd - m) ** 2) / (2 * s * s) - math.log(s) - 0.5 * math.log(2 * math.pi)
            for xd, m in zip(x, mu, strict=True)
        )
        terms.append(math.log(w / total) + log_n)
    top = max(terms)
    return top + math.log(sum(math.exp(t - top) for t in terms))


def test_log_density_is_the_logsumexp_over_components():
    weights, locs, scales = [1.0, 3.0, 0.5], [[-2.0, 0.0], [2.0, 1.0], [0.0, -3.0]], [0.5, 1.0, 2]
    # the spec's [[...], ...] stacks each inner list on the last axis: locs are [D, K]
    d = make_dist(
        "GaussianMixture",
        {
            "weights": torch.tensor(weights),
            "locs": torch.tensor(locs).T,
            "scales": torch.tensor(scales),
        },
        batch_shape=(4,),
        event_shape=(2,),
        like=LIKE,
    )
    assert d.batch_shape == (4,) and d.event_shape == (2,)
    x = torch.tensor([[0.1, 0.2], [-2.0, 0.0], [5.0, -4.0], [1.5, 1.5]], dtype=torch.float64)
    want = torch.tensor([by_hand(r, weights, locs, scales) for r in x.tolist()], dtype=LIKE.dtype)
    torch.testing.assert_close(d.log_prob(x), want, rtol=1e-12, atol=1e-12)


def test_draws_have_the_mixture_moments():
    """mean = Σ π_k μ_k, var = Σ π_k (σ_k² + μ_k²) − mean²; the tolerances are 5 standard errors
    from the exact variance and fourth central moment Σ π_k (d⁴ + 6 d² σ² + 3 σ⁴), d = μ_k − m."""
    w, mu, s = np.array([1.0, 3.0]), np.array([-2.0, 2.0]), np.array([0.5, 1.0])
    pi = w / w.sum()
    m = float(pi @ mu)
    var = float(pi @ (s**2 + mu**2)) - m * m
    d = mu - m
    m4 = float(pi @ (d**4 + 6 * d**2 * s**2 + 3 * s**4))
    n = 40_000
    dist = make_dist(
        "GaussianMixture",
        {"weights": torch.tensor(w), "locs": torch.tensor(mu), "scales": torch.tensor(s)},
        batch_shape=(n,),
        event_shape=(),
        like=LIKE,
    )
    x = draw(dist, generator=torch.Generator().manual_seed(0)).numpy()
    assert abs(x.mean() - m) < 5 * math.sqrt(var / n)
    assert abs(x.var() - var) < 5 * math.sqrt((m4 - var * var) / n)


SPEC = """\
model gmm_vae {
  data x : binary[D]
  latent z : real[2]
  net enc = MLP(hidden = [16])
  net dec = MLP(hidden = [16])
  z ~ GaussianMixture(weights = [1, 3], locs = [[-2, 0], [2, 1]], scales = 0.5)
  x | z ~ Bernoulli(logits = dec(z))
  guide {
    z | x ~ Normal(enc(x))
  }
  loss elbo
}
"""


def test_one_component_per_inner_list_and_the_prior_draws_around_them(tmp_path, capsys):
    """Prior draws of the spec's mixture have mean Σ π_k μ_k = (1, 0.75) (5 standard errors)."""
    spec = tmp_path / "gmm_vae.gen"
    spec.write_text(SPEC)
    from gendsl.runs import build_model

    model = build_model(str(spec), bindings={"D": 4})
    density = model.program.density("z", (20_000,))
    z = draw(density.to_dist(), generator=torch.Generator().manual_seed(1))
    pi, mu = np.array([0.25, 0.75]), np.array([[-2.0, 0.0], [2.0, 1.0]])
    var = pi @ (0.25 + mu**2) - (pi @ mu) ** 2
    err = np.abs(z.numpy().mean(0) - pi @ mu)
    assert (err < 5 * np.sqrt(var / 20_000)).all(), err


def test_a_mixture_prior_vae_trains_and_derive_says_monte_carlo(tmp_path, capsys):
    spec, out = tmp_path / "gmm_vae.gen", tmp_path / "run"
    spec.write_text(SPEC)
    assert main(["derive", "--brief", str(spec)]) == 0
    kl = "KL(q(z | x) || p(z))  [Normal || GaussianMixture: Monte Carlo]"
    assert kl in capsys.readouterr().out
    argv = ["train", str(spec), "--data", "digits_binary", "--steps", "5", "--batch-size", "16"]
    assert main([*argv, "--out", str(out), "--no-progress"]) == 0
    assert main(["sample", str(out), "-n", "3", "--out", str(tmp_path / "s.npy")]) == 0
    samples = np.load(tmp_path / "s.npy")
    assert samples.shape == (3, 64) and set(np.unique(samples)) <= {0.0, 1.0}


def test_the_mixture_prior_elbo_equals_pyro_trace_elbo_on_the_same_draws(tmp_path):
    """No closed-form KL against a mixture: the loss is the Monte Carlo ELBO, which is Pyro's
    Trace_ELBO on the model's own Pyro program with the same draws (value and gradients)."""
    from pyro.infer import Trace_ELBO

    from gendsl.runs import build_model

    spec = tmp_path / "gmm_vae.gen"
    spec.write_text(SPEC)
    torch.manual_seed(0)
    model = build_model(str(spec), bindings={"D": 6})
    x = (torch.rand(10, 6, generator=torch.Generator().manual_seed(3)) < 0.5).float()
    torch.manual_seed(5)
    ours = model.loss(x)
    torch.manual_seed(5)
    theirs = Trace_ELBO().differentiable_loss(model.pyro_model, model.pyro_guide, {"x": x}) / 10
    torch.testing.assert_close(ours, theirs)
    for a, b in zip(
        torch.autograd.grad(ours, list(model.parameters())),
        torch.autograd.grad(theirs, list(model.parameters())),
        strict=True,
    ):
        torch.testing.assert_close(a, b)


def test_a_mixture_source_gives_a_flow_its_density():
    """With a zero velocity the flow is the identity, so log p_1(x) = log p_0(x): the mixture's
    hand-written log-density."""
    from gendsl.lower import load

    model = load(
        """
model f {
  data x1 : real[2]
  latent x0 : real[2]
  x0 ~ GaussianMixture([1, 3], [[-2, 0], [2, 1]], [0.5, 1])
  path x_t = (1 - t) * x0 + t * x1
  net v = MLP(hidden = [8], time = concat)
  predict velocity = v(x_t, t)
  loss flow_matching
}""",
        D=2,
    )
    last = model.nets["v"].body[-1]
    torch.nn.init.zeros_(last.weight)
    torch.nn.init.zeros_(last.bias)
    x = torch.tensor([[0.1, 0.2], [-2.0, 0.0], [3.0, -1.0]])
    want = [by_hand(r, [1, 3], [[-2, 0], [2, 1]], [0.5, 1]) for r in x.tolist()]
    torch.testing.assert_close(model.log_prob(x), torch.tensor(want), rtol=1e-5, atol=1e-5)
    draws = model.sample(4, generator=torch.Generator().manual_seed(0))
    assert draws.shape == (4, 2)
