"""The EDM view of a process (gendsl.processes.edm) against the marginal it comes from:
σ(t) = s_t / a_t, t(σ) inverts it, and c_in scales x_t to unit variance (by simulation)."""

from __future__ import annotations

import math

import pytest
import torch

from gendsl.processes import VESDE, VPSDE, DiscreteChain, SubVPSDE
from gendsl.processes.edm import c_in, sigma_of_t, t_of_sigma

F64 = torch.float64
PROCESSES = {
    "vp": VPSDE,
    "ve": VESDE,
    "subvp": SubVPSDE,
    "chain": lambda: DiscreteChain.linear(K=200, beta_1=1e-3, beta_K=0.1),
}


@pytest.mark.parametrize("name", PROCESSES)
def test_sigma_is_the_ratio_of_the_marginal_and_t_of_sigma_inverts_it(name):
    process = PROCESSES[name]()
    t = torch.linspace(process.t_min, process.T, 9, dtype=F64)
    a_t, s_t = process.marginal(t)
    sigma = sigma_of_t(process, t)
    torch.testing.assert_close(sigma, s_t / a_t, rtol=1e-12, atol=0)
    torch.testing.assert_close(t_of_sigma(process, sigma), t, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("sigma_data", [0.5, 1.0, 2.0])
def test_c_in_gives_the_network_input_unit_variance(sigma_data):
    """x_t = a_t x0 + s_t ε with x0 ~ N(0, σ_data²): Var(c_in x_t) = 1.  With n draws the sample
    variance of a unit normal has standard error √(2/n)."""
    n = 40000
    gen = torch.Generator().manual_seed(0)
    a_t, s_t = torch.tensor(0.6, dtype=F64), torch.tensor(0.8, dtype=F64)
    x0 = sigma_data * torch.randn(n, generator=gen, dtype=F64)
    x_t = a_t * x0 + s_t * torch.randn(n, generator=gen, dtype=F64)
    var = (c_in(s_t, a_t=a_t, sigma_data=sigma_data) * x_t).var()
    assert abs(var - 1) < 4 * math.sqrt(2 / n)
    # a_t = 1, s_t = σ: Karras et al. 2022's c_in(σ) = 1 / √(σ² + σ_data²) of y = x_t / a_t
    sigma = s_t / a_t
    torch.testing.assert_close(
        c_in(sigma, sigma_data=sigma_data), 1 / torch.sqrt(sigma**2 + sigma_data**2)
    )
    torch.testing.assert_close(
        c_in(s_t, a_t=a_t, sigma_data=sigma_data), c_in(sigma, sigma_data=sigma_data) / a_t
    )
