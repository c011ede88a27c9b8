"""The SDE's variational bound with the exact score of Gaussian data: its mean over the data
is H(p0) + KL(p_T ‖ π) − D/2 log(v(t_min)/v(0)) (the score-matching gap is zero)."""

from __future__ import annotations

import math

import pytest
import torch

from gendsl.metrics.sde_elbo import prior_cross_entropy, sde_neg_elbo
from gendsl.processes.sdes import VESDE, VPSDE, SubVPSDE


def _variance(process, s0: float, t: float) -> float:
    a, s = process.marginal(torch.tensor([t], dtype=torch.float64))
    return float(a**2 * s0**2 + s**2)


@pytest.mark.parametrize("process", [VPSDE(), SubVPSDE(), VESDE()], ids=repr)
@pytest.mark.parametrize("s0", [1.0, 0.5])
def test_bound_with_the_exact_score_of_gaussian_data(process, s0: float) -> None:
    """x0 ~ N(0, s0² I): p_t = N(0, v_t I), v_t = a_t² s0² + s_t², score −x / v_t.  With the
    exact score the bound's mean is the cross-entropy H(p0) + KL(p_T ‖ π) less the part of the
    time integral below t_min, −(D/2) log(v(t_min)/s0²) (the integrand's mean is −D v'/v)."""
    d, n = 2, 4000
    x0 = s0 * torch.randn(n, d, generator=torch.Generator().manual_seed(0), dtype=torch.float64)

    def score(x, t):
        a, s = process.marginal(t)
        return -x / (a**2 * s0**2 + s**2)[:, None]

    gen = torch.Generator().manual_seed(1)
    bound = sde_neg_elbo(process, score, x0, repeats=32, generator=gen)
    v_T, v_prior = _variance(process, s0, process.T), float(process.prior_std()) ** 2
    entropy = 0.5 * d * math.log(2 * math.pi * math.e * s0**2)
    kl_prior = 0.5 * d * (v_T / v_prior - 1 - math.log(v_T / v_prior))
    below = -0.5 * d * math.log(_variance(process, s0, process.t_min) / s0**2)
    exact = entropy + kl_prior - below
    error = bound.std().item() / math.sqrt(n)  # over x0, t and ε together
    assert abs(float(bound.mean()) - exact) < 4 * error


def test_prior_term_matches_monte_carlo() -> None:
    process = VPSDE()
    x0 = torch.tensor([[1.0, -2.0], [0.5, 0.0]], dtype=torch.float64)
    a, s = process.marginal(torch.tensor([process.T], dtype=torch.float64))
    eps = torch.randn(200000, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    for i in range(2):
        x_t = a * x0[i] + s * eps
        values = -process.prior_log_prob(x_t)
        error = float(values.std()) / math.sqrt(len(values))
        assert abs(float(prior_cross_entropy(process, x0)[i]) - float(values.mean())) < 5 * error
