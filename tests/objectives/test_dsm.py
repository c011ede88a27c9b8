"""Denoising score matching: conversions, weights, optimum, time sampling, DDPM, DSM and SSM.

The data are Gaussian, x0 ~ N(μ, σ0² I), so p_t = N(a_t μ, (a_t² σ0² + s_t²) I) and the optimal
score is -(x - a_t μ)/(a_t² σ0² + s_t²); every check is against that closed form, autograd or
per-sample Monte Carlo standard errors."""

from __future__ import annotations

import math

import pytest
import torch

from gendsl.errors import UsageError
from gendsl.objectives.dsm import (
    ddpm_simple_loss,
    dsm_fixed_sigma,
    dsm_loss,
    sample_time,
    score_fn_from_pred,
    sliced_score_matching,
    weighted_dsm,
)
from gendsl.processes import VESDE, VPSDE, DiscreteChain, SubVPSDE

DT = torch.float64
MU = torch.tensor([1.0, -0.5], dtype=DT)
SIGMA0 = 0.5


def gaussian_data(n: int, gen: torch.Generator) -> torch.Tensor:
    return MU + SIGMA0 * torch.randn(n, 2, generator=gen, dtype=DT)


def param_score(process, c, k):
    """score_{c,k}(x, t) = -(x - c a_t μ)/(k (a_t² σ0² + s_t²)); c = k = 1 is the true score."""

    def score(x, t):
        a, s = process.marginal(t)
        var = (a**2 * SIGMA0**2 + s**2)[:, None]
        return -(x - c[:, None] * a[:, None] * MU) / (k[:, None] * var)

    return score


def as_prediction(process, score_fn, predict):
    """The network output of each parameterisation, written from the definitions
    x_t = a x0 + s ε, ε = -s ∇log p, x0 = (x_t - s ε)/a, v = a ε - s x0."""

    def pred(x, t):
        a, s = (m[:, None] for m in process.marginal(t))
        score = score_fn(x, t)
        eps = -s * score
        x0 = (x - s * eps) / a
        return {"score": score, "eps": eps, "x0": x0, "v": a * eps - s * x0}[predict]

    return pred


PREDICTS = ["eps", "x0", "v", "score"]


@pytest.mark.parametrize("predict", PREDICTS)
@pytest.mark.parametrize("weight", ["likelihood", "sigma2", "min_snr"])
def test_every_parameterisation_gives_the_same_score_space_loss(predict, weight):
    proc = VPSDE()
    gen = torch.Generator().manual_seed(0)
    B = 64
    x0 = gaussian_data(B, gen)
    t = proc.t_min + (1 - proc.t_min) * torch.rand(B, generator=gen, dtype=DT)
    eps = torch.randn(B, 2, generator=gen, dtype=DT)
    ones = torch.ones(B, dtype=DT)
    score = param_score(proc, 1.3 * ones, 0.8 * ones)
    loss = weighted_dsm(
        proc, as_prediction(proc, score, predict), x0, t, eps, predict=predict, weight=weight
    )
    a, s = proc.marginal(t)
    x_t = a[:, None] * x0 + s[:, None] * eps
    score_err = ((score(x_t, t) + eps / s[:, None]) ** 2).sum(1)
    snr = a**2 / s**2
    lam = {
        "likelihood": proc.g(t) ** 2,
        "sigma2": s**2,
        "min_snr": s**2 * torch.minimum(snr, torch.full_like(snr, 5.0)) / snr,
    }[weight]
    torch.testing.assert_close(loss, lam * score_err, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("predict", ["eps", "x0", "v"])
def test_min_snr_matches_the_native_weights_of_hang_et_al(predict):
    """Hang et al. 2023: weight min(SNR, γ)/SNR on ε, min(SNR, γ) on x0, min(SNR, γ)/(SNR+1) on v
    (VP process, a² + s² = 1)."""
    proc = VPSDE()
    gen = torch.Generator().manual_seed(1)
    B = 64
    x0 = gaussian_data(B, gen)
    t = proc.t_min + (1 - proc.t_min) * torch.rand(B, generator=gen, dtype=DT)
    eps = torch.randn(B, 2, generator=gen, dtype=DT)
    ones = torch.ones(B, dtype=DT)
    pred = as_prediction(proc, param_score(proc, 0.7 * ones, 1.2 * ones), predict)
    gamma = 3.0
    loss = weighted_dsm(proc, pred, x0, t, eps, predict=predict, weight="min_snr", gamma=gamma)
    plain = weighted_dsm(proc, pred, x0, t, eps, predict=predict, weight="simple")
    a, s = proc.marginal(t)
    snr = a**2 / s**2
    m = torch.clamp(snr, max=gamma)
    native = {"eps": m / snr, "x0": m, "v": m / (snr + 1)}[predict]
    torch.testing.assert_close(loss, native * plain, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("predict", PREDICTS)
def test_simple_weight_is_the_plain_squared_error(predict):
    proc = SubVPSDE()
    gen = torch.Generator().manual_seed(2)
    B = 16
    x0 = gaussian_data(B, gen)
    t = torch.full((B,), 0.4, dtype=DT)
    eps = torch.randn(B, 2, generator=gen, dtype=DT)

    def zero(x, t):
        return torch.zeros_like(x)

    loss = weighted_dsm(proc, zero, x0, t, eps, predict=predict, weight="simple")
    a, s = (m[:, None] for m in proc.marginal(t))
    target = {"eps": eps, "x0": x0, "v": a * eps - s * x0, "score": -eps / s}[predict]
    torch.testing.assert_close(loss, (target**2).sum(1))


@pytest.mark.parametrize(
    ("predict", "weight", "time"),
    [
        ("eps", "simple", "uniform"),
        ("x0", "sigma2", "uniform"),
        ("v", "min_snr", "uniform"),
        ("score", "sigma2", "uniform"),
        ("eps", "likelihood", "importance"),
        ("v", "likelihood", "importance"),
    ],
)
def test_gradient_vanishes_at_the_closed_form_optimum(predict, weight, time):
    """Per-sample gradients wrt (c, k) of score_{c,k}: mean within 4 SE of 0 at c = k = 1, and
    clearly signed at a perturbed point, where the loss is also larger (common random numbers)."""
    proc = VPSDE()
    B = 20000

    def grads_and_loss(c_val, k_val):
        gen = torch.Generator().manual_seed(3)
        c = torch.full((B,), c_val, dtype=DT, requires_grad=True)
        k = torch.full((B,), k_val, dtype=DT, requires_grad=True)
        pred = as_prediction(proc, param_score(proc, c, k), predict)
        loss = dsm_loss(
            proc,
            pred,
            gaussian_data(B, gen),
            predict=predict,
            weight=weight,
            time=time,
            generator=gen,
        )
        gc, gk = torch.autograd.grad(loss.sum(), [c, k])
        return gc, gk, loss.detach()

    gc, gk, loss_opt = grads_and_loss(1.0, 1.0)
    for g in (gc, gk):
        assert abs(g.mean()) < 4 * g.std() / math.sqrt(B)
    gc, gk, loss_pert = grads_and_loss(1.3, 1.0)
    assert gc.mean() > 4 * gc.std() / math.sqrt(B)
    diff = loss_pert - loss_opt
    assert diff.mean() > 4 * diff.std() / math.sqrt(B)


@pytest.mark.parametrize("proc", [VPSDE(), SubVPSDE(), VESDE()], ids=repr)
def test_importance_density_is_minus_the_log_snr_slope(proc):
    """g²/s² = -dλ/dt (autograd), which sample_time uses to invert the proposal in λ."""
    t = torch.linspace(0.01, 1.0, 50, dtype=DT, requires_grad=True)
    (dlam,) = torch.autograd.grad(proc.log_snr(t).sum(), t)
    _, s = proc.marginal(t)
    torch.testing.assert_close((proc.g(t) ** 2 / s**2).detach(), -dlam, rtol=1e-6, atol=1e-8)


def test_importance_times_follow_their_cdf_and_reweight_to_uniform():
    proc = VPSDE()
    gen = torch.Generator().manual_seed(4)
    n = 20000
    t, w = sample_time(proc, n, time="importance", generator=gen, dtype=DT)
    assert t.min() >= proc.t_min - 1e-9 and t.max() <= proc.T + 1e-9
    lam = proc.log_snr
    lo, hi = torch.tensor(proc.t_min, dtype=DT), torch.tensor(proc.T, dtype=DT)
    cdf = (lam(lo) - lam(t.sort().values)) / (lam(lo) - lam(hi))
    ks = (cdf - torch.arange(1, n + 1, dtype=DT) / n).abs().max()
    assert ks < 1.63 / math.sqrt(n)  # Kolmogorov-Smirnov at 1 %
    # E_q[w h(t)] = E_U[h(t)]: with h = 1 the weights average to one.
    assert abs(w.mean() - 1) < 4 * w.std() / math.sqrt(n)


def test_importance_sampling_is_unbiased_and_has_lower_variance():
    proc = VPSDE()
    B = 20000
    ones = torch.ones(B, dtype=DT)
    pred = as_prediction(proc, param_score(proc, 1.2 * ones, 0.9 * ones), "eps")
    losses = {}
    for time in ("uniform", "importance"):
        gen = torch.Generator().manual_seed(5)
        losses[time] = dsm_loss(
            proc, pred, gaussian_data(B, gen), weight="likelihood", time=time, generator=gen
        )
    u, i = losses["uniform"], losses["importance"]
    se = math.sqrt((u.var() + i.var()) / B)
    assert abs(u.mean() - i.mean()) < 4 * se
    assert i.var() < 0.5 * u.var()


def test_score_fn_from_pred_recovers_the_score():
    proc = VPSDE()
    gen = torch.Generator().manual_seed(6)
    B = 32
    x = torch.randn(B, 2, generator=gen, dtype=DT)
    t = torch.rand(B, generator=gen, dtype=DT) * 0.9 + 0.05
    ones = torch.ones(B, dtype=DT)
    score = param_score(proc, 0.5 * ones, 1.5 * ones)
    for predict in PREDICTS:
        got = score_fn_from_pred(proc, as_prediction(proc, score, predict), predict=predict)
        torch.testing.assert_close(got(x, t), score(x, t))


def test_ddpm_simple_loss_at_the_posterior_mean_of_eps_matches_its_closed_form():
    """At ε̂ = E[ε | x_k], E‖ε - ε̂‖² = D ᾱ σ0²/(ᾱ σ0² + 1 - ᾱ), averaged over k = 1..K; an
    off-by-one in the ᾱ index would change it (the schedule is short and steep)."""
    chain = DiscreteChain(torch.linspace(0.05, 0.5, 6, dtype=DT))
    abar = chain.alphas_cumprod

    def eps_post(x, t):
        k = torch.round(t * chain.K).long()
        assert torch.all((k >= 1) & (k <= chain.K))
        ab = abar[k - 1][:, None]
        return (1 - ab).sqrt() * (x - ab.sqrt() * MU) / (ab * SIGMA0**2 + 1 - ab)

    gen = torch.Generator().manual_seed(7)
    B = 40000
    loss = ddpm_simple_loss(chain, eps_post, gaussian_data(B, gen), generator=gen)
    expected = (2 * abar * SIGMA0**2 / (abar * SIGMA0**2 + 1 - abar)).mean()
    assert abs(loss.mean() - expected) < 4 * loss.std() / math.sqrt(B)


def test_dsm_fixed_sigma_at_optimum_matches_vincent_closed_form():
    """With s*(x̃) = -(x̃ - μ)/(σ0² + σ²), E ½‖s* + z/σ‖² = ½ D (1/σ² - 1/(σ0² + σ²))."""
    sigma = 0.3
    var = SIGMA0**2 + sigma**2
    gen = torch.Generator().manual_seed(8)
    B = 40000
    x = gaussian_data(B, gen)
    loss = dsm_fixed_sigma(lambda y: -(y - MU) / var, x, sigma, generator=gen)
    expected = 0.5 * 2 * (1 / sigma**2 - 1 / var)
    assert abs(loss.mean() - expected) < 4 * loss.std() / math.sqrt(B)
    worse = dsm_fixed_sigma(lambda y: -(y - MU) / (2 * var), x, sigma, generator=gen)
    assert worse.mean() > loss.mean() + 4 * worse.std() / math.sqrt(B)
    with pytest.raises(UsageError, match=r"-0\.1"):
        dsm_fixed_sigma(lambda y: y, x, -0.1)


def test_ssm_with_given_projections_matches_the_formula():
    gen = torch.Generator().manual_seed(9)
    A = torch.randn(3, 3, generator=gen, dtype=DT)
    b = torch.randn(3, generator=gen, dtype=DT)
    x = torch.randn(4, 3, generator=gen, dtype=DT)
    v = torch.randn(5, 4, 3, generator=gen, dtype=DT)

    def score(y):
        return y @ A.T + b

    s = score(x)
    vAv = torch.einsum("mbi,ij,mbj->mb", v, A, v)
    sv = (v * s).sum(-1)
    plain = sliced_score_matching(score, x, v, variance_reduction=False)
    vr = sliced_score_matching(score, x, v, variance_reduction=True)
    torch.testing.assert_close(plain, (vAv + 0.5 * sv**2).mean(0))
    torch.testing.assert_close(vr, vAv.mean(0) + 0.5 * (s**2).sum(-1))


def test_ssm_gradient_vanishes_at_the_true_gaussian_score():
    """Hyvärinen's objective E[tr ∇s + ½‖s‖²] for s = -(x - μ)/v is minimised at v = σ0²; the
    trace term needs create_graph, so a missing one would break the gradient."""
    B = 4000

    def per_sample_grad(v_val):
        gen = torch.Generator().manual_seed(10)
        v = torch.full((B,), v_val, dtype=DT, requires_grad=True)
        loss = sliced_score_matching(
            lambda y: -(y - MU) / v[:, None], gaussian_data(B, gen), 2, generator=gen
        )
        return torch.autograd.grad(loss.sum(), v)[0]

    g = per_sample_grad(SIGMA0**2)
    assert abs(g.mean()) < 4 * g.std() / math.sqrt(B)
    g = per_sample_grad(1.5 * SIGMA0**2)
    assert g.mean() > 4 * g.std() / math.sqrt(B)


def test_bad_choices_quote_the_value():
    proc = VPSDE()
    x0 = torch.zeros(2, 2)
    with pytest.raises(UsageError, match="'noise'"):
        dsm_loss(proc, lambda x, t: x, x0, predict="noise")
    with pytest.raises(UsageError, match="'snr'"):
        dsm_loss(proc, lambda x, t: x, x0, weight="snr")
    with pytest.raises(UsageError, match="'stratified'"):
        dsm_loss(proc, lambda x, t: x, x0, time="stratified")
    with pytest.raises(UsageError, match="-1"):
        dsm_loss(proc, lambda x, t: x, x0, weight="min_snr", gamma=-1.0)
