"""The distribution table against scipy.stats, hand formulas, torch's KLs and simulation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import integrate, stats

from gendsl.distributions import DISTRIBUTIONS
from gendsl.errors import UsageError
from gendsl.objectives.densities import (
    Density,
    bernoulli_logits_log_prob,
    draw,
    kl_normal_normal,
    kl_normal_std_normal,
    make_dist,
    normal_log_prob,
    unpack_params,
)

LIKE = torch.zeros((), dtype=torch.float64)
EPS = 1e-5  # the floor of a packed positive parameter (semantics: softplus(u) + 1e-5)
N, EVENT = 4, (3,)
RNG = np.random.default_rng(0)


def cb_log_pdf(x: np.ndarray, lam: np.ndarray) -> np.ndarray:
    """log of the continuous Bernoulli density C(λ) λ^x (1 − λ)^(1 − x), C(λ) = 2 artanh(1 − 2λ)
    / (1 − 2λ) (Loaiza-Ganem & Cunningham 2019, eq. 7)."""
    c = 2 * np.arctanh(1 - 2 * lam) / (1 - 2 * lam)
    return np.log(c) + x * np.log(lam) + (1 - x) * np.log1p(-lam)


def logit(p: np.ndarray) -> np.ndarray:
    return np.log(p) - np.log1p(-p)


def u(low: float, high: float, shape=(N, *EVENT)) -> np.ndarray:
    return RNG.uniform(low, high, shape)


#: name -> (parameters, a value in the support, log-density per element from scipy)
CASES = {
    "Normal": (
        {"loc": u(-1, 1), "scale": u(0.5, 2)},
        lambda p: stats.norm.rvs(p["loc"], p["scale"], random_state=RNG),
        lambda v, p: stats.norm.logpdf(v, p["loc"], p["scale"]),
    ),
    "Laplace": (
        {"loc": u(-1, 1), "scale": u(0.5, 2)},
        lambda p: stats.laplace.rvs(p["loc"], p["scale"], random_state=RNG),
        lambda v, p: stats.laplace.logpdf(v, p["loc"], p["scale"]),
    ),
    "StudentT": (
        {"df": u(2.5, 6), "loc": u(-1, 1), "scale": u(0.5, 2)},
        lambda p: stats.t.rvs(p["df"], p["loc"], p["scale"], random_state=RNG),
        lambda v, p: stats.t.logpdf(v, p["df"], p["loc"], p["scale"]),
    ),
    "LogNormal": (
        {"loc": u(-1, 1), "scale": u(0.3, 1)},
        lambda p: stats.lognorm.rvs(p["scale"], scale=np.exp(p["loc"]), random_state=RNG),
        lambda v, p: stats.lognorm.logpdf(v, p["scale"], scale=np.exp(p["loc"])),
    ),
    "Uniform": (
        {"low": u(-2, 0), "high": u(0.5, 2)},
        lambda p: RNG.uniform(p["low"], p["high"]),
        lambda v, p: stats.uniform.logpdf(v, p["low"], p["high"] - p["low"]),
    ),
    "Beta": (
        {"a": u(0.5, 3), "b": u(0.5, 3)},
        lambda p: stats.beta.rvs(p["a"], p["b"], random_state=RNG),
        lambda v, p: stats.beta.logpdf(v, p["a"], p["b"]),
    ),
    "Gamma": (
        {"concentration": u(0.5, 3), "rate": u(0.5, 3)},
        lambda p: stats.gamma.rvs(p["concentration"], scale=1 / p["rate"], random_state=RNG),
        lambda v, p: stats.gamma.logpdf(v, p["concentration"], scale=1 / p["rate"]),
    ),
    "Exponential": (
        {"rate": u(0.5, 3)},
        lambda p: stats.expon.rvs(scale=1 / p["rate"], random_state=RNG),
        lambda v, p: stats.expon.logpdf(v, scale=1 / p["rate"]),
    ),
    "Bernoulli": (
        {"probs": u(0.1, 0.9)},
        lambda p: (RNG.uniform(size=p["probs"].shape) < p["probs"]).astype(float),
        lambda v, p: stats.bernoulli.logpmf(v, p["probs"]),
    ),
    "ContinuousBernoulli": (
        {"probs": u(0.1, 0.9)},
        lambda p: RNG.uniform(0.01, 0.99, p["probs"].shape),
        lambda v, p: cb_log_pdf(v, p["probs"]),
    ),
}


def as_torch(params: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    return {k: torch.from_numpy(v) for k, v in params.items()}


def test_every_distribution_of_the_table_is_covered():
    # a mixture's density is not a product over the event: tests/objectives/test_mixtures.py
    assert set(DISTRIBUTIONS) == {*CASES, "Categorical", "GaussianMixture"}


@pytest.mark.parametrize("name", sorted(CASES))
def test_log_prob_matches_scipy_summed_over_the_event(name):
    params, sample, log_pdf = CASES[name]
    value = sample(params)
    expected = log_pdf(value, params).sum(-1)
    v = torch.from_numpy(value)
    d = make_dist(name, as_torch(params), batch_shape=(N,), event_shape=EVENT, like=LIKE)
    assert d.batch_shape == (N,) and d.event_shape == EVENT
    np.testing.assert_allclose(d.log_prob(v).numpy(), expected, rtol=1e-9)
    fast = Density(name, as_torch(params), batch=(N,), event=EVENT, like=LIKE)
    np.testing.assert_allclose(fast.log_prob(v).numpy(), expected, rtol=1e-9)


@pytest.mark.parametrize("name", ["Bernoulli", "ContinuousBernoulli"])
def test_logits_give_the_same_density_as_probs(name):
    params, sample, log_pdf = CASES[name]
    value = sample(params)
    logits = {"logits": torch.from_numpy(logit(params["probs"]))}
    d = Density(name, logits, batch=(N,), event=EVENT, like=LIKE)
    np.testing.assert_allclose(
        d.log_prob(torch.from_numpy(value)).numpy(), log_pdf(value, params).sum(-1), rtol=1e-9
    )


def test_categorical_with_probs_logits_and_a_literal_probability_vector():
    probs = RNG.dirichlet(np.ones(5), size=N)
    labels = torch.tensor([0, 4, 2, 2])
    expected = np.log(probs[np.arange(N), labels.numpy()])
    for params in (
        {"probs": torch.from_numpy(probs)},
        {"logits": torch.from_numpy(np.log(probs))},
    ):
        d = make_dist(
            "Categorical", params, batch_shape=(N,), event_shape=(), like=LIKE, classes=5
        )
        assert d.batch_shape == (N,) and d.event_shape == ()
        np.testing.assert_allclose(d.log_prob(labels).numpy(), expected, rtol=1e-9)
    shared = torch.tensor([0.1, 0.2, 0.3, 0.15, 0.25], dtype=torch.float64)
    d = Density("Categorical", {"probs": shared}, batch=(N,), event=(), like=LIKE, classes=5)
    assert d.shape == (N,)
    np.testing.assert_allclose(d.log_prob(labels).numpy(), np.log(shared.numpy()[labels]))


def test_to_event_sums_a_multi_axis_event_and_numbers_take_the_like_dtype():
    value = torch.from_numpy(RNG.normal(size=(N, 2, 3)))
    d = make_dist(
        "Normal", {"loc": 0.5, "scale": 2}, batch_shape=(N,), event_shape=(2, 3), like=LIKE
    )
    assert d.batch_shape == (N,) and d.event_shape == (2, 3)
    assert d.mean.dtype == torch.float64
    expected = stats.norm.logpdf(value.numpy(), 0.5, 2).reshape(N, -1).sum(1)
    np.testing.assert_allclose(d.log_prob(value).numpy(), expected, rtol=1e-12)
    fast = Density("Normal", {"loc": 0.5, "scale": 2}, batch=(N,), event=(2, 3), like=LIKE)
    np.testing.assert_allclose(fast.log_prob(value).numpy(), expected, rtol=1e-12)
    assert fast.mean.shape == (N, 2, 3) and fast.mean.dtype == torch.float64


# ------------------------------------------------------------------ packed parameters


def softplus(x: torch.Tensor) -> torch.Tensor:
    return torch.from_numpy(np.logaddexp(0.0, x.numpy()))


def test_packed_normal_splits_loc_and_a_softplus_scale():
    out = torch.from_numpy(RNG.normal(size=(N, 2, 3)))
    p = unpack_params("Normal", out, EVENT)
    assert set(p) == {"loc", "scale"}
    torch.testing.assert_close(p["loc"], out[:, 0])
    torch.testing.assert_close(p["scale"], softplus(out[:, 1]) + EPS)
    huge_negative = unpack_params("Normal", torch.full((1, 2, 3), -200.0), EVENT)["scale"]
    assert torch.all(huge_negative >= EPS)


def test_packed_parameters_follow_the_table_order_and_positivity():
    out = torch.from_numpy(RNG.normal(size=(N, 3, 3)))
    t = unpack_params("StudentT", out, EVENT)
    torch.testing.assert_close(t["df"], softplus(out[:, 0]) + EPS)
    torch.testing.assert_close(t["loc"], out[:, 1])
    torch.testing.assert_close(t["scale"], softplus(out[:, 2]) + EPS)
    g = unpack_params("Gamma", out[:, :2], EVENT)
    torch.testing.assert_close(g["concentration"], softplus(out[:, 0]) + EPS)
    torch.testing.assert_close(g["rate"], softplus(out[:, 1]) + EPS)
    lap = unpack_params("Laplace", out[:, :2], EVENT)
    torch.testing.assert_close(lap["loc"], out[:, 0])
    torch.testing.assert_close(lap["scale"], softplus(out[:, 1]) + EPS)


def test_packed_single_parameter_distributions_read_logits():
    out = torch.from_numpy(RNG.normal(size=(N, 1, 3)))
    for name in ("Bernoulli", "ContinuousBernoulli"):
        p = unpack_params(name, out, EVENT)
        assert list(p) == ["logits"]
        torch.testing.assert_close(p["logits"], out[:, 0])
    classes = torch.from_numpy(RNG.normal(size=(N, 1, 5)))
    c = unpack_params("Categorical", classes, (5,))
    torch.testing.assert_close(c["logits"], classes[:, 0])


def test_packed_outputs_may_carry_leading_particle_axes():
    out = torch.from_numpy(RNG.normal(size=(7, N, 2, 3)))
    p = unpack_params("Normal", out, EVENT)
    assert p["loc"].shape == p["scale"].shape == (7, N, 3)
    torch.testing.assert_close(p["loc"], out[:, :, 0])


def test_packed_errors_quote_the_distribution_and_the_shape():
    with pytest.raises(UsageError, match="Uniform cannot take its parameters from one network"):
        unpack_params("Uniform", torch.zeros(N, 2, 3), EVENT)
    with pytest.raises(UsageError, match=r"Normal takes 2 parameter\(s\).*shape \(4, 3, 3\)"):
        unpack_params("Normal", torch.zeros(N, 3, 3), EVENT)
    with pytest.raises(UsageError, match="shape \\(3,\\)"):
        unpack_params("Normal", torch.zeros(3), EVENT)
    with pytest.raises(UsageError, match="no back end for the distribution 'Cauchy'"):
        unpack_params("Cauchy", torch.zeros(N, 2, 3), EVENT)


# ------------------------------------------------------------------ draws


def _cb_moments(lam: float) -> tuple[float, float]:
    def pdf(x):
        return math.exp(cb_log_pdf(np.array(x), np.array(lam)))

    m1 = integrate.quad(lambda x: x * pdf(x), 0, 1)[0]
    m2 = integrate.quad(lambda x: x * x * pdf(x), 0, 1)[0]
    return m1, m2 - m1**2


#: name -> (scalar parameters, mean, variance)
MOMENTS = {
    "Normal": ({"loc": 1.0, "scale": 2.0}, 1.0, 4.0),
    "Laplace": ({"loc": 0.5, "scale": 1.5}, 0.5, 2 * 1.5**2),
    "StudentT": ({"df": 9.0, "loc": 1.0, "scale": 2.0}, 1.0, 4.0 * 9 / 7),
    "LogNormal": (
        {"loc": 0.0, "scale": 0.5},
        math.exp(0.125),
        (math.exp(0.25) - 1) * math.exp(0.25),
    ),
    "Uniform": ({"low": -1.0, "high": 3.0}, 1.0, 16 / 12),
    "Beta": ({"a": 2.0, "b": 5.0}, 2 / 7, 10 / (49 * 8)),
    "Gamma": ({"concentration": 3.0, "rate": 2.0}, 1.5, 0.75),
    "Exponential": ({"rate": 2.0}, 0.5, 0.25),
    "Bernoulli": ({"probs": 0.3}, 0.3, 0.21),
    "ContinuousBernoulli": ({"probs": 0.3}, *_cb_moments(0.3)),
}


@pytest.mark.parametrize("name", sorted(MOMENTS))
def test_draws_have_the_closed_form_mean_and_variance(name):
    params, mean, var = MOMENTS[name]
    n = 20000
    d = make_dist(name, params, batch_shape=(n,), event_shape=(), like=LIKE)
    x = draw(d, generator=torch.Generator().manual_seed(1)).numpy()
    se_mean = x.std() / math.sqrt(n)
    se_var = ((x - x.mean()) ** 2).std() / math.sqrt(n)
    assert abs(x.mean() - mean) < 5 * se_mean, (x.mean(), mean)
    assert abs(x.var() - var) < 5 * se_var, (x.var(), var)


def test_categorical_draws_follow_the_probabilities():
    probs = torch.tensor([0.2, 0.3, 0.5], dtype=torch.float64)
    d = make_dist(
        "Categorical", {"probs": probs}, batch_shape=(20000,), event_shape=(), like=LIKE, classes=3
    )
    x = draw(d, generator=torch.Generator().manual_seed(0))
    freq = torch.bincount(x, minlength=3).double() / 20000
    se = torch.sqrt(probs * (1 - probs) / 20000)
    assert torch.all((freq - probs).abs() < 5 * se)


@pytest.mark.parametrize("name", ["Normal", "Gamma", "Bernoulli", "StudentT"])
def test_draws_are_reproducible_from_the_generator_and_leave_the_global_rng_alone(name):
    params = MOMENTS[name][0]
    d = make_dist(name, params, batch_shape=(50,), event_shape=(2,), like=LIKE)
    state = torch.random.get_rng_state()
    a = draw(d, generator=torch.Generator().manual_seed(5))
    b = draw(d, generator=torch.Generator().manual_seed(5))
    c = draw(d, generator=torch.Generator().manual_seed(6))
    assert torch.equal(torch.random.get_rng_state(), state)
    assert a.shape == (50, 2) and torch.equal(a, b) and not torch.equal(a, c)


# ------------------------------------------------------------------ the hot path's closed forms


def test_normal_and_bernoulli_closed_forms_match_scipy():
    x, loc, scale = RNG.normal(size=6), RNG.normal(size=6), RNG.uniform(0.3, 2, 6)
    t = torch.from_numpy
    np.testing.assert_allclose(
        normal_log_prob(t(x), t(loc), t(scale)).numpy(), stats.norm.logpdf(x, loc, scale)
    )
    np.testing.assert_allclose(
        normal_log_prob(t(x), 0.5, 2.0).numpy(), stats.norm.logpdf(x, 0.5, 2.0)
    )
    b, p = (RNG.uniform(size=6) < 0.5).astype(float), RNG.uniform(0.05, 0.95, 6)
    np.testing.assert_allclose(
        bernoulli_logits_log_prob(t(b), t(logit(p))).numpy(), stats.bernoulli.logpmf(b, p)
    )
    lit = bernoulli_logits_log_prob(t(b), 0.0).numpy()
    np.testing.assert_allclose(lit, np.full(6, math.log(0.5)))


def test_normal_kls_match_torch_and_monte_carlo():
    g = torch.Generator().manual_seed(0)
    mq, sq = torch.randn(5, generator=g, dtype=torch.float64), torch.rand(5, generator=g) + 0.3
    mp, sp = torch.randn(5, generator=g, dtype=torch.float64), torch.rand(5, generator=g) + 0.3
    sq, sp = sq.double(), sp.double()
    q, p = torch.distributions.Normal(mq, sq), torch.distributions.Normal(mp, sp)
    torch.testing.assert_close(
        kl_normal_normal(mq, sq, mp, sp), torch.distributions.kl_divergence(q, p)
    )
    std = torch.distributions.kl_divergence(q, torch.distributions.Normal(0.0, 1.0))
    torch.testing.assert_close(kl_normal_std_normal(mq, sq), std)
    z = q.sample((200000,))
    mc = (q.log_prob(z) - p.log_prob(z)).mean(0)
    se = (q.log_prob(z) - p.log_prob(z)).std(0) / math.sqrt(200000)
    assert torch.all((mc - kl_normal_normal(mq, sq, mp, sp)).abs() < 5 * se)


def test_density_kl_elements_closed_form_fallback_and_none():
    g = torch.Generator().manual_seed(1)
    loc = torch.randn(N, 3, generator=g, dtype=torch.float64)
    scale = torch.rand(N, 3, generator=g, dtype=torch.float64) + 0.2
    q = Density("Normal", {"loc": loc, "scale": scale}, batch=(N,), event=EVENT, like=LIKE)
    prior = Density("Normal", {"loc": 0, "scale": 1}, batch=(N,), event=EVENT, like=LIKE)
    wide = Density("Normal", {"loc": 0.5, "scale": 2.0}, batch=(N,), event=EVENT, like=LIKE)
    ref = torch.distributions.Normal(loc, scale)
    for p, mu, sd in ((prior, 0.0, 1.0), (wide, 0.5, 2.0)):
        kl = q.kl_elements(p)
        assert kl.shape == (N, 3)
        expected = torch.distributions.kl_divergence(ref, torch.distributions.Normal(mu, sd))
        torch.testing.assert_close(kl, expected)
    both_numbers = prior.kl_elements(wide)
    assert both_numbers.shape == (N, 3)
    gamma = {"concentration": scale + 1, "rate": scale}
    gq = Density("Gamma", gamma, batch=(N,), event=EVENT, like=LIKE)
    gp = Density("Gamma", {"concentration": 2.0, "rate": 1.0}, batch=(N,), event=EVENT, like=LIKE)
    expected = torch.distributions.kl_divergence(
        torch.distributions.Gamma(scale + 1, scale), torch.distributions.Gamma(2.0, 1.0)
    )
    torch.testing.assert_close(gq.kl_elements(gp), expected)
    t = Density(
        "StudentT", {"df": 3.0, "loc": loc, "scale": scale}, batch=(N,), event=EVENT, like=LIKE
    )
    assert t.kl_elements(prior) is None
    other_event = Density("Normal", {"loc": 0, "scale": 1}, batch=(N,), event=(2,), like=LIKE)
    assert q.kl_elements(other_event) is None


def test_density_rsample_is_torch_normal_rsample_and_differentiable():
    loc = torch.zeros(N, 3, dtype=torch.float64, requires_grad=True)
    scale = torch.full((N, 3), 2.0, dtype=torch.float64, requires_grad=True)
    d = Density("Normal", {"loc": loc, "scale": scale}, batch=(N,), event=EVENT, like=LIKE)
    torch.manual_seed(3)
    z = d.rsample()
    torch.manual_seed(3)
    torch.testing.assert_close(z, torch.distributions.Normal(loc, scale).rsample())
    loc_grad, scale_grad = torch.autograd.grad(z.sum(), [loc, scale])
    torch.testing.assert_close(loc_grad, torch.ones_like(loc))
    torch.testing.assert_close(scale_grad, z.detach() / 2.0)
    assert d.has_rsample
    numbers = Density("Normal", {"loc": 0, "scale": 1}, batch=(N,), event=EVENT, like=LIKE)
    assert numbers.rsample().shape == (N, 3) and numbers.rsample().dtype == torch.float64
    coins = Density("Bernoulli", {"probs": 0.5}, batch=(N,), event=EVENT, like=LIKE)
    assert not coins.has_rsample
    assert set(coins.rsample().unique().tolist()) <= {0.0, 1.0}


def test_density_shape_widens_with_particle_axes():
    loc = torch.zeros(2, N, 3, dtype=torch.float64)
    d = Density("Normal", {"loc": loc, "scale": 1.0}, batch=(N,), event=EVENT, like=LIKE)
    assert d.shape == (2, N, 3)
    assert d.rsample().shape == (2, N, 3)
    assert d.mean.shape == (2, N, 3)
