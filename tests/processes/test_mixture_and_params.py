"""The exact mixture score against autograd, and the parameterisation conversions."""

from __future__ import annotations

import math

import pytest
import torch

from gendsl.processes import (
    VESDE,
    VPSDE,
    GaussianMixture,
    eps_from_score,
    eps_from_v,
    eps_from_x0,
    score_from_eps,
    score_from_x0,
    v_from_eps_x0,
    x0_from_eps,
    x0_from_score,
    x0_from_v,
)

F64 = torch.float64


def mixture() -> GaussianMixture:
    means = torch.tensor([[-2.0, 0.0], [2.0, 1.0], [0.0, -3.0]], dtype=F64)
    stds = torch.tensor([[0.05, 0.1], [0.2, 0.2], [0.5, 0.02]], dtype=F64)
    return GaussianMixture(means, stds, torch.tensor([0.2, 0.5, 0.3], dtype=F64))


def noised_log_prob_by_hand(mix, x, a, s):
    """log Σ_m w_m Π_d N(x_d; a μ_md, a² σ_md² + s²), written independently."""
    total = torch.zeros(x.shape[0], dtype=F64)
    for m in range(mix.means.shape[0]):
        var = a**2 * mix.stds[m] ** 2 + s**2
        dens = torch.exp(-0.5 * (x - a * mix.means[m]) ** 2 / var) / torch.sqrt(2 * math.pi * var)
        total = total + mix.weights[m] * dens.prod(-1)
    return torch.log(total)


@pytest.mark.parametrize("process", [VPSDE(), VESDE(sigma_max=5.0)], ids=["vp", "ve"])
@pytest.mark.parametrize("t", [0.0, 0.02, 0.3, 0.9])
def test_score_is_gradient_of_noised_log_prob(process, t):
    mix = mixture()
    torch.manual_seed(0)
    x = (mix.sample(16) + 0.3 * torch.randn(16, 2, dtype=F64)).requires_grad_(True)
    tt = torch.full((16,), t, dtype=F64)
    a, s = process.marginal(torch.tensor(t, dtype=F64))
    log_p = noised_log_prob_by_hand(mix, x, a, s)
    torch.testing.assert_close(mix.log_prob(x, tt, process), log_p)
    (grad,) = torch.autograd.grad(log_p.sum(), x)
    torch.testing.assert_close(mix.score(x.detach(), tt, process), grad)
    torch.testing.assert_close(mix.score_fn(process)(x.detach(), tt), grad)


def test_clean_density_integrates_to_one_and_samples_match():
    mix = GaussianMixture(torch.tensor([[-1.0], [1.5]], dtype=F64), 0.1, [1.0, 3.0])
    grid = torch.linspace(-3, 4, 20001, dtype=F64)[:, None]
    mass = torch.trapezoid(mix.log_prob(grid).exp(), grid[:, 0])
    torch.testing.assert_close(mass, torch.tensor(1.0, dtype=F64))
    x, labels = mix.sample(20000, generator=torch.Generator().manual_seed(0), return_labels=True)
    assert abs(labels.double().mean() - 0.75) < 0.015
    assert abs(x[labels == 1].std() - 0.1) < 0.005
    assert bool((mix.responsibilities(x).argmax(1) == labels).all())


def test_mixture_rejects_bad_arguments():
    with pytest.raises(ValueError, match=r"-0\.1"):
        GaussianMixture(torch.zeros(2, 2), torch.tensor([0.1, -0.1]))
    with pytest.raises(ValueError, match=r"\(3,\)"):
        GaussianMixture(torch.zeros(2, 2), torch.ones(3))


def test_parameterisation_round_trips():
    torch.manual_seed(0)
    x0, eps = torch.randn(6, 3, dtype=F64), torch.randn(6, 3, dtype=F64)
    a, s = torch.rand(6, dtype=F64) + 0.1, torch.rand(6, dtype=F64) * 3 + 0.1
    x_t = a[:, None] * x0 + s[:, None] * eps
    torch.testing.assert_close(x0_from_eps(x_t, eps, a, s), x0)
    torch.testing.assert_close(eps_from_x0(x_t, x0, a, s), eps)
    v = v_from_eps_x0(eps, x0, a, s)
    torch.testing.assert_close(v, a[:, None] * eps - s[:, None] * x0)
    torch.testing.assert_close(x0_from_v(x_t, v, a, s), x0)
    torch.testing.assert_close(eps_from_v(x_t, v, a, s), eps)
    score = score_from_eps(eps, s)
    torch.testing.assert_close(eps_from_score(score, s), eps)
    torch.testing.assert_close(score_from_x0(x_t, x0, a, s), score)
    torch.testing.assert_close(x0_from_score(x_t, score, a, s), x0)


def test_conditional_score_from_x0_is_autograd_of_kernel():
    """∇ log N(x_t; a x0, s² I) = score_from_x0(x_t, x0, a, s)."""
    x0 = torch.randn(4, 2, dtype=F64)
    x_t = torch.randn(4, 2, dtype=F64, requires_grad=True)
    a, s = torch.tensor(0.7, dtype=F64), torch.tensor(0.4, dtype=F64)
    log_q = torch.distributions.Normal(a * x0, s).log_prob(x_t).sum()
    (grad,) = torch.autograd.grad(log_q, x_t)
    torch.testing.assert_close(score_from_x0(x_t.detach(), x0, a, s), grad)


def test_tweedie_denoiser_is_posterior_mean_for_a_gaussian():
    """For x0 ~ N(m, τ²): E[x0 | x_t] = m + a τ² (x_t - a m) / (a² τ² + s²)."""
    mix = GaussianMixture(torch.tensor([[0.5, -1.0]], dtype=F64), 0.3)
    process = VPSDE()
    t = torch.full((5,), 0.4, dtype=F64)
    a, s = process.marginal(t)
    x_t = torch.randn(5, 2, dtype=F64)
    m, tau2 = mix.means[0], 0.09
    expect = m + a[:, None] * tau2 * (x_t - a[:, None] * m) / (
        a[:, None] ** 2 * tau2 + s[:, None] ** 2
    )
    torch.testing.assert_close(x0_from_score(x_t, mix.score(x_t, t, process), a, s), expect)
