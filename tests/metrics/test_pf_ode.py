"""PF-ODE likelihood against the exact Gaussian log-density, divergence estimators against
autograd Jacobians, and bits per dimension against a density with a known answer."""

from __future__ import annotations

import math

import pytest
import torch

from gendsl.errors import DataError, UsageError
from gendsl.metrics.pf_ode import (
    bits_per_dim,
    dequantize,
    dequantized_log_prob,
    pf_ode_flow,
    pf_ode_log_prob,
)
from gendsl.processes import VESDE, VPSDE, SubVPSDE

DT = torch.float64
MU = torch.tensor([1.0, -0.5], dtype=DT)
# A correlated data covariance, so the score's Jacobian is not diagonal (Rademacher probes are
# exact for diagonal Jacobians, which would hide a biased Hutchinson estimator).
SIGMA0 = torch.tensor([[0.30, 0.15], [0.15, 0.20]], dtype=DT)


def marginal_cov(process, t):
    """p_t = N(a_t μ, a_t² Σ0 + s_t² I) for scalar or [B] times."""
    a, s = process.marginal(t)
    return a, a[..., None, None] ** 2 * SIGMA0 + s[..., None, None] ** 2 * torch.eye(2, dtype=DT)


def exact_score(process):
    def score(x, t):
        a, cov = marginal_cov(process, t)
        return -torch.linalg.solve(cov, (x - a[:, None] * MU)[..., None])[..., 0]

    return score


def exact_log_prob(process, x, t: float):
    a, cov = marginal_cov(process, torch.tensor(t, dtype=DT))
    return torch.distributions.MultivariateNormal(a * MU, cov).log_prob(x)


PROCESSES = [VPSDE(), SubVPSDE(), VESDE()]


@pytest.mark.parametrize("proc", PROCESSES, ids=repr)
def test_exact_trace_flow_transports_the_gaussian_density(proc):
    """log p_{t_min}(x) = log p_T(x_T) + ∫ ∇·v dt with the true p_T, and x_T is the Gaussian
    PF-ODE map: in the eigenbasis of Σ0 each coordinate keeps its z-score,
    x_T = a_T μ + (C_T C_0⁻¹)^{1/2} (x - a_0 μ) with C_t = a_t² Σ0 + s_t² I (all commute)."""
    gen = torch.Generator().manual_seed(0)
    x = MU + torch.randn(6, 2, generator=gen, dtype=DT) @ torch.linalg.cholesky(SIGMA0).T
    x_T, delta = pf_ode_flow(proc, exact_score(proc), x, rtol=1e-6, atol=1e-6)
    lhs = exact_log_prob(proc, x, proc.t_min)
    torch.testing.assert_close(exact_log_prob(proc, x_T, proc.T) + delta, lhs, rtol=0, atol=1e-4)
    lam, U = torch.linalg.eigh(SIGMA0)
    (a0, s0), (aT, sT) = (proc.marginal(torch.tensor(t, dtype=DT)) for t in (proc.t_min, proc.T))
    ratio = ((aT**2 * lam + sT**2) / (a0**2 * lam + s0**2)).sqrt()
    want = aT * MU + (x - a0 * MU) @ U @ torch.diag(ratio) @ U.T
    torch.testing.assert_close(x_T, want, rtol=1e-4, atol=1e-5)
    # With the process prior N(0, s_T² I) the answer is off only by a_T μ ≈ 0 and a_T² Σ0.
    log_p = pf_ode_log_prob(proc, exact_score(proc), x)
    torch.testing.assert_close(log_p, lhs, rtol=0, atol=0.05)


def test_hutchinson_log_prob_is_unbiased():
    """400 copies of one point each get their own Rademacher probe: the mean is the exact value
    within 4 standard errors, and the copies do differ."""
    proc = VPSDE()
    x = torch.tensor([[0.7, 0.1]], dtype=DT).expand(400, 2)
    gen = torch.Generator().manual_seed(1)
    est = pf_ode_log_prob(proc, exact_score(proc), x, trace="hutchinson", generator=gen)
    exact = pf_ode_log_prob(proc, exact_score(proc), x[:1])
    assert est.std() > 1e-3
    assert abs(est.mean() - exact[0]) < 4 * est.std() / math.sqrt(x.shape[0])


def test_uniform_model_gives_log2_levels_bits_per_dim():
    """A model uniform on z = 2y - 1 ∈ [-1, 1]^D has log p_z = -D log 2; the dequantised bound
    is then exactly -D log 256 nats, i.e. 8 bits per dimension."""
    D = 12
    log_pz = torch.full((3,), -D * math.log(2), dtype=DT)
    log_p = dequantized_log_prob(log_pz, D, levels=256, scale=2.0)
    torch.testing.assert_close(log_p, torch.full((3,), -D * math.log(256), dtype=DT))
    torch.testing.assert_close(bits_per_dim(log_p, D), torch.full((3,), 8.0, dtype=DT))


def test_dequantize_fills_each_bin_uniformly():
    levels = 16
    gen = torch.Generator().manual_seed(4)
    k = torch.randint(0, levels, (5000, 4), generator=gen)
    y = dequantize(k.to(DT) / (levels - 1), levels=levels, generator=gen)
    assert torch.equal(torch.floor(y * levels).long(), k)
    frac = y * levels - k
    assert abs(frac.mean() - 0.5) < 4 * math.sqrt(1 / 12 / frac.numel())
    with pytest.raises(DataError, match=r"1\.5"):
        dequantize(torch.tensor([0.0, 1.5]))
    with pytest.raises(UsageError, match="'svd'"):
        pf_ode_log_prob(VPSDE(), exact_score(VPSDE()), torch.zeros(1, 2), trace="svd")
