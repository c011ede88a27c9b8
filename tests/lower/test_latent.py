"""The latent-variable back end against closed forms, Pyro's own ELBOs, and simulation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from lower_specs import checked_latent
from pyro.infer import Trace_ELBO, TraceMeanField_ELBO

from gendsl.errors import UsageError
from gendsl.lower import compile_model
from gendsl.objectives.residual import ResidualNormal

VAE = """
model vae {
  data x : binary[D]
  latent z : real[3]
  net enc = MLP(hidden = [16])
  net dec = MLP(hidden = [16])
  z ~ Normal(0, 1)
  x | z ~ Bernoulli(logits = dec(z))
  guide { z | x ~ Normal(enc(x)) }
  loss LOSS
}
"""

HVAE = """
model hvae {
  data x : binary[6]
  latent z2 : real[2]
  latent z1 : real[3]
  net top = MLP(hidden = [8])
  net dec = MLP(hidden = [8])
  net enc1 = MLP(hidden = [8])
  net enc2 = MLP(hidden = [8])
  z2 ~ Normal(0, 1)
  z1 | z2 ~ Normal(top(z2))
  x | z1 ~ Bernoulli(logits = dec(z1))
  guide {
    z2 | x ~ Normal(enc2(x))
    z1 | x, z2 ~ Normal(enc1(x, z2))
  }
  loss elbo
}
"""


def vae(loss: str = "elbo", D: int = 6, seed: int = 0):
    torch.manual_seed(seed)
    return compile_model(checked_latent(VAE.replace("LOSS", loss)), bindings={"D": D})


def binary(n: int, d: int, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(n, d, generator=g) < 0.3).float()


# ------------------------------------------------------------------ PPCA: exact log-likelihood


def ppca_max_loglik(x: np.ndarray, q: int, sigma: float) -> float:
    """Max over W, mu of the PPCA log-likelihood per point with fixed noise sigma (Tipping &
    Bishop 1999, eq. 8 at W = U_q (Lambda_q - sigma^2 I)^(1/2))."""
    d = x.shape[1]
    s = np.cov(x.T, bias=True)
    lam = np.sort(np.linalg.eigvalsh(s))[::-1]
    s2 = sigma**2
    top = np.maximum(lam[:q], s2)
    logdet = np.log(top).sum() + (d - q) * np.log(s2)
    trace = (lam[:q] / top).sum() + lam[q:].sum() / s2
    return -0.5 * (d * np.log(2 * np.pi) + logdet + trace)


def test_linear_gaussian_vae_reaches_the_ppca_log_likelihood():
    spec = """
    model ppca {
      data x : real[4]
      latent z : real[2]
      net enc = MLP(hidden = [])
      net dec = MLP(hidden = [])
      z ~ Normal(0, 1)
      x | z ~ Normal(dec(z), 0.5)
      guide { z | x ~ Normal(enc(x)) }
      loss elbo
    }
    """
    g = torch.Generator().manual_seed(0)
    W = torch.tensor([[2.0, 0.0], [1.0, 1.5], [0.0, -1.0], [0.5, 0.5]])
    x = torch.randn(800, 2, generator=g) @ W.T + 0.5 * torch.randn(800, 4, generator=g) + 1.0
    torch.manual_seed(0)
    model = compile_model(checked_latent(spec), bindings={})
    opt = torch.optim.Adam(model.parameters(), lr=0.03)
    for _ in range(1500):
        opt.zero_grad()
        model.loss(x).backward()
        opt.step()
    exact = ppca_max_loglik(x.double().numpy(), 2, 0.5)
    model.eval()
    with torch.no_grad():
        bound = float(torch.stack([model.elbo(x).mean() for _ in range(20)]).mean())
    assert bound < exact + 0.01
    assert abs(bound - exact) < 0.01 * abs(exact), (bound, exact)


# ------------------------------------------------------------------ agreement with Pyro


def assert_loss_is_pyros(model, x: torch.Tensor, pyro_cls, *, seed: int) -> None:
    """The model's loss and its gradients equal Pyro's ``pyro_cls`` on the same draws."""
    torch.manual_seed(seed)
    ours = model.loss(x)
    torch.manual_seed(seed)
    theirs = pyro_cls().differentiable_loss(model.pyro_model, model.pyro_guide, {"x": x})
    torch.testing.assert_close(ours, theirs / x.shape[0])
    g1 = torch.autograd.grad(ours, list(model.parameters()))
    g2 = torch.autograd.grad(theirs / x.shape[0], list(model.parameters()))
    for a, b in zip(g1, g2, strict=True):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize(
    ("loss", "pyro_cls"), [("elbo", TraceMeanField_ELBO), ("elbo(kl = mc)", Trace_ELBO)]
)
def test_loss_equals_pyro_elbo_on_the_same_draws(loss, pyro_cls):
    assert_loss_is_pyros(vae(loss), binary(10, 6), pyro_cls, seed=5)


def test_beta_scales_the_kl_like_poutine_scale_in_pyro():
    model, x = vae("elbo(beta = 3)"), binary(10, 6)
    plain = vae("elbo")
    plain.load_state_dict(model.state_dict())
    torch.manual_seed(2)
    terms = plain._terms(plain.as_data(x))
    expected = -terms.recon.mean() + 3 * terms.kl_total.mean()
    torch.manual_seed(2)
    torch.testing.assert_close(model.loss(x), expected)
    torch.manual_seed(2)
    pyro_value = TraceMeanField_ELBO().differentiable_loss(
        model.pyro_model, model.pyro_guide, {"x": x}
    )
    torch.testing.assert_close(pyro_value / 10, expected)


def test_hierarchical_vae_matches_pyro():
    torch.manual_seed(0)
    model, x = compile_model(checked_latent(HVAE), bindings={}), binary(7, 6)
    torch.manual_seed(9)
    ours = model.loss(x)
    torch.manual_seed(9)
    theirs = TraceMeanField_ELBO().differentiable_loss(
        model.pyro_model, model.pyro_guide, {"x": x}
    )
    torch.testing.assert_close(ours, theirs / 7)
    assert set(model.diagnostics(x)) >= {"kl/z1", "kl/z2", "active_units/z1", "elbo"}


# ------------------------------------------------------------------ NVAE residual cells


def residual_hvae(loss: str):
    torch.manual_seed(0)
    return compile_model(
        checked_latent(HVAE.replace("loss elbo\n", f"loss {loss}\n")), bindings={}
    )


@pytest.mark.parametrize(
    ("loss", "pyro_cls"),
    [
        ("elbo(residual = true)", TraceMeanField_ELBO),
        ("elbo(residual = true, kl = mc)", Trace_ELBO),
    ],
)
def test_residual_elbo_equals_pyro_on_the_same_draws(loss, pyro_cls):
    assert_loss_is_pyros(residual_hvae(loss), binary(7, 6), pyro_cls, seed=9)


def test_residual_guide_is_relative_to_the_prior_of_its_parents():
    model, x = residual_hvae("elbo(residual = true)"), binary(7, 6)
    plain = residual_hvae("elbo")
    plain.load_state_dict(model.state_dict())
    torch.manual_seed(3)
    m, q = model.trace(model.as_data(x))
    z1 = q["z1"].fn
    assert isinstance(z1, ResidualNormal)
    prior = m["z1"].fn.params  # p(z1 | z2) at the guide's z2
    torch.testing.assert_close(z1.params["loc"], prior["loc"] + z1.delta_loc)
    torch.testing.assert_close(z1.params["scale"], prior["scale"] * z1.delta_scale)
    # under the N(0, 1) prior of the top level the residual is the absolute parameterisation
    torch.manual_seed(3)
    _, q_plain = plain.trace(plain.as_data(x))
    torch.testing.assert_close(q["z2"].fn.params["loc"], q_plain["z2"].fn.params["loc"])
    torch.testing.assert_close(q["z2"].fn.params["scale"], q_plain["z2"].fn.params["scale"])
    # below it the guide network gives the deltas
    torch.testing.assert_close(z1.delta_loc, plain.nets["enc1"](x, q["z2"].value)[:, 0])


# ------------------------------------------------------------------ KL, IWAE


def test_analytic_kl_matches_closed_form_and_monte_carlo():
    model, x = vae(), binary(5, 6)
    model_rec, guide_rec = model.trace(model.as_data(x), particles=4000)
    q, p = guide_rec["z"].fn, model_rec["z"].fn
    mu, sd = q.params["loc"][:5], q.params["scale"][:5]
    closed = (-torch.log(sd) + 0.5 * (sd**2 + mu**2 - 1)).sum(-1)
    with torch.no_grad():
        analytic = model._terms(model.as_data(x)).kl["z"]
        mc = (q.log_prob(guide_rec["z"].value) - p.log_prob(guide_rec["z"].value)).reshape(4000, 5)
    torch.testing.assert_close(analytic, closed, rtol=1e-5, atol=1e-6)
    se = mc.std(0) / math.sqrt(4000)
    assert torch.all((mc.mean(0) - analytic).abs() < 4 * se + 1e-3)


def test_iwae_bound_increases_with_k_and_is_above_the_elbo():
    model, x = vae(), binary(4, 6)
    with torch.no_grad():
        reps = 300
        elbo = torch.stack([model.elbo(x) for _ in range(reps)]).mean(0)
        bounds = {
            k: torch.stack([model.iwae(x, k) for _ in range(reps)]).mean(0) for k in (1, 5, 50)
        }
    se = 0.05
    assert torch.all(bounds[5] > bounds[1] + se)
    assert torch.all(bounds[50] > bounds[5])
    torch.testing.assert_close(bounds[1], elbo, atol=se, rtol=0)
    assert torch.all(bounds[50] > elbo)


def test_iwae_loss_is_minus_the_bound():
    model, x = vae("iwae(k = 7)"), binary(5, 6)
    torch.manual_seed(4)
    loss = model.loss(x)
    torch.manual_seed(4)
    torch.testing.assert_close(loss, -model.iwae(x, 7).mean())


# ------------------------------------------------------------------ enumeration


def test_enumeration_gives_the_exact_mixture_marginal():
    spec = """
    model mix {
      data x : real[2]
      latent c : label[3]
      net mu = MLP(hidden = [])
      c ~ Categorical(probs = [0.2, 0.3, 0.5])
      x | c ~ Normal(mu(c), 0.7)
      loss elbo(enumerate = [c])
    }
    """
    torch.manual_seed(0)
    model = compile_model(checked_latent(spec), bindings={})
    x = torch.randn(6, 2)
    with torch.no_grad():
        means = model.nets["mu"](y=torch.arange(3))
    pi = torch.tensor([0.2, 0.3, 0.5])
    comp = torch.distributions.Normal(means[None], 0.7).log_prob(x[:, None]).sum(-1)
    exact = torch.logsumexp(torch.log(pi) + comp, dim=1)
    torch.testing.assert_close(model.elbo(x).detach(), exact)
    torch.testing.assert_close(model.loss(x), -exact.mean())
    with torch.no_grad():  # diagnostics run without a graph; Pyro's enumeration needs one
        torch.testing.assert_close(model.elbo(x), exact)
    assert model.diagnostics(x)["elbo"] == pytest.approx(float(exact.mean()), rel=1e-5)


# ------------------------------------------------------------------ schedules and free bits


def test_annealing_follows_the_linear_schedule_in_training_steps():
    model, x = vae("elbo(beta = 2, anneal = linear(0.5, 1, steps = 4))"), binary(4, 6)
    model.train()
    seen = []
    for _ in range(6):
        seen.append(model.current_beta())
        model.loss(x)
    assert seen == pytest.approx([2 * (0.5 + 0.5 * min(1, s / 4)) for s in range(6)])
    with torch.no_grad():
        model.loss(x)
    model.eval()
    model.loss(x)
    assert int(model.step) == 6


def test_free_bits_floor_each_dimension_of_the_batch_mean_kl():
    model, x = vae("elbo(free_bits = 0.4)"), binary(8, 6)
    torch.manual_seed(3)
    terms = model._terms(model.as_data(x), per_dim=True)
    kl_dims = terms.kl_dims["z"].mean(0)
    expected = -terms.recon.mean() + torch.clamp(kl_dims, min=0.4).sum()
    torch.manual_seed(3)
    torch.testing.assert_close(model.loss(x), expected)
    big = vae("elbo(free_bits = 50)")
    torch.manual_seed(3)
    loss = big.loss(x)
    enc_grads = torch.autograd.grad(loss, list(big.nets["enc"].parameters()), allow_unused=True)
    torch.manual_seed(3)
    recon_only = -big._terms(big.as_data(x)).recon.mean() + 3 * 50
    torch.testing.assert_close(loss, recon_only)
    assert any(g is not None and g.abs().sum() > 0 for g in enc_grads)


def test_active_units_count_dimensions_with_varying_posterior_mean():
    from gendsl.objectives.elbo import active_units

    means = torch.zeros(100, 4)
    means[:, 1] = torch.linspace(-1, 1, 100)
    means[:, 3] = 0.05 * torch.linspace(-1, 1, 100)
    assert active_units(means) == 1


# ------------------------------------------------------------------ module behaviour


def test_state_dict_round_trip_reproduces_the_model():
    a, b, x = vae(seed=0), vae(seed=1), binary(5, 6)
    a.train()
    a.loss(x)
    b.load_state_dict(a.state_dict())
    assert int(b.step) == 1
    torch.manual_seed(0)
    la = a.loss(x)
    torch.manual_seed(0)
    torch.testing.assert_close(la, b.loss(x))
    sa = a.sample(4, generator=torch.Generator().manual_seed(3))
    sb = b.sample(4, generator=torch.Generator().manual_seed(3))
    assert torch.equal(sa, sb)


def test_to_moves_parameters_and_constants():
    model = vae().to("cpu").to(torch.float64)
    x = binary(5, 6).double()
    assert model.loss(x).dtype == torch.float64
    assert model.sample(3, mean=True).dtype == torch.float64


def test_sample_mean_is_the_decoder_probability_of_prior_draws():
    model = vae()
    z = torch.distributions.Normal(0.0, 1.0)
    g = torch.Generator().manual_seed(11)
    means = model.sample(5, mean=True, generator=g)
    g = torch.Generator().manual_seed(11)
    z = z.icdf(torch.rand(5, 3, generator=g).clamp(1e-38, 1 - 1e-7))
    with torch.no_grad():
        torch.testing.assert_close(means, torch.sigmoid(model.nets["dec"](z)))
    draws = model.sample(4000)
    assert set(draws.unique().tolist()) <= {0.0, 1.0}


def test_bad_calls_raise_usage_errors():
    model = vae()
    with pytest.raises(UsageError, match="ancestral"):
        model.sample(2, method="ode")
    with pytest.raises(UsageError, match="no exact log-likelihood"):
        model.log_prob(binary(2, 6))
    with pytest.raises(UsageError, match="size D is not bound"):
        compile_model(checked_latent(VAE.replace("LOSS", "elbo")), bindings={})


def test_describe_lists_sites_networks_and_terms():
    text = vae("elbo(beta = 4)").describe()
    assert "latent family" in text
    assert "x | z ~ Bernoulli" in text
    assert "enc = MLP: (6,) -> (2, 3)" in text
    assert "KL(q(z | x) || p(z)): analytic" in text


def test_checked_default_loss_has_no_annealing():
    """The checker fills ``anneal = none``; β must be 1 from the first step (it once read the
    default as a one-step warm-up from β = 0)."""
    from gendsl.lower import load

    torch.manual_seed(0)
    model = load(VAE.replace("LOSS", "elbo"), D=6)
    assert model.checked.loss.kwargs["anneal"] == "none"
    assert model.current_beta() == 1.0
    x = binary(6, 6)
    torch.manual_seed(1)
    terms = model._terms(model.as_data(x))
    torch.manual_seed(1)
    torch.testing.assert_close(model.loss(x), (terms.kl_total - terms.recon).mean())


def test_the_loss_of_normal_and_bernoulli_sites_builds_no_distribution_objects(monkeypatch):
    """The hot path uses the closed forms; Pyro distributions are for the Pyro programs."""
    from gendsl.objectives.densities import Density

    model, x = vae(), binary(5, 6)
    torch.manual_seed(0)
    expected = model.loss(x)

    def forbidden(self):
        raise AssertionError(f"built a distribution object for {self.name}")

    monkeypatch.setattr(Density, "to_dist", forbidden)
    torch.manual_seed(0)
    torch.testing.assert_close(model.loss(x), expected)
    with pytest.raises(AssertionError, match="built a distribution object"):
        model.pyro_model(model.as_data(x))


def test_lets_follow_the_model_to_another_dtype():
    spec = """
    model scaled {
      data x : real[3]
      latent z : real[2]
      let sd = [0.5, 1, 2]
      net enc = MLP(hidden = [])
      net dec = MLP(hidden = [])
      z ~ Normal(0, 1)
      x | z ~ Normal(dec(z), sd)
      guide { z | x ~ Normal(enc(x)) }
      loss elbo
    }
    """
    torch.manual_seed(0)
    model = compile_model(checked_latent(spec), bindings={})
    x = torch.randn(4, 3)
    model.loss(x)  # evaluates the lets in float32 first
    model = model.double()
    x = x.double()
    torch.manual_seed(1)
    model_rec, guide_rec = model.trace(model.as_data(x))
    z = guide_rec["z"].value
    assert z.dtype == torch.float64
    with torch.no_grad():
        mean = model.nets["dec"](z)
    sd = torch.tensor([0.5, 1.0, 2.0], dtype=torch.float64)
    expected = torch.distributions.Normal(mean, sd).log_prob(x).sum(-1)
    torch.testing.assert_close(model_rec["x"].fn.log_prob(x).detach(), expected)


def test_sampling_rejects_options_the_latent_family_does_not_take():
    from gendsl.analysis import load_checked
    from gendsl.resources import stdlib_path

    model = compile_model(load_checked(str(stdlib_path("vae"))), bindings={"D": 4})
    assert model.sample(3).shape == (3, 4)
    with pytest.raises(UsageError, match=r"unknown sampling option\(s\) schedule for the latent"):
        model.sample(3, schedule="log_snr_jump")
