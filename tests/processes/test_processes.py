"""Forward processes against simulation, finite differences and independently written formulas."""

from __future__ import annotations

import math

import pytest
import torch
import torchsde

from gendsl.processes import (
    VESDE,
    VPSDE,
    AffineSDE,
    DiscreteChain,
    Process,
    SubVPSDE,
    expand_like,
)

F64 = torch.float64


def vp_beta(t):
    return 0.1 + 19.9 * t


def make_affine() -> AffineSDE:
    """VP written as user callables, kernel integrated numerically."""
    return AffineSDE(lambda t: -0.5 * vp_beta(t), lambda t: vp_beta(t).sqrt(), t_min=1e-3)


PROCESSES = {
    "vp": VPSDE,
    "ve": VESDE,
    "subvp": SubVPSDE,
    "chain": lambda: DiscreteChain.linear(K=200, beta_1=1e-3, beta_K=0.1),
    "affine": make_affine,
}


@pytest.fixture(params=list(PROCESSES))
def process(request) -> Process:
    return PROCESSES[request.param]()


def test_kernel_moments_solve_the_moment_odes(process):
    """d log a/dt = f and d s²/dt = 2 f s² + g² (Särkkä & Solin 2019, eq. 6.2), by central
    differences of ``marginal`` at points away from the chain's step boundaries."""
    t = torch.tensor([0.1033, 0.3021, 0.5517, 0.8049], dtype=F64)
    h = 1e-5
    (a_p, s_p), (a_m, s_m) = process.marginal(t + h), process.marginal(t - h)
    _, s = process.marginal(t)
    dlog_a = (torch.log(a_p) - torch.log(a_m)) / (2 * h)
    ds2 = (s_p**2 - s_m**2) / (2 * h)
    # the integrated kernel is piecewise linear on a grid of step 2.5e-4: slopes are O(step) off
    rtol = 2e-3 if isinstance(process, AffineSDE) else 1e-4
    torch.testing.assert_close(dlog_a, process.f(t), rtol=rtol, atol=1e-6)
    expect = 2 * process.f(t) * s**2 + process.g(t) ** 2
    torch.testing.assert_close(ds2, expect, rtol=rtol, atol=1e-6)


def test_kernel_starts_at_identity(process):
    a0, s0 = process.marginal(torch.zeros(1, dtype=F64))
    torch.testing.assert_close(a0, torch.ones(1, dtype=F64))
    torch.testing.assert_close(s0, torch.zeros(1, dtype=F64))


@pytest.mark.parametrize("name", ["vp", "ve", "subvp", "affine"])
def test_forward_sde_simulation_matches_marginal(name):
    """Euler–Maruyama paths of the forward SDE from a fixed x0 have mean a_t x0, var s_t²."""
    process = PROCESSES[name]()
    torch.manual_seed(0)
    n, x0 = 3000, torch.tensor([1.5, -2.0], dtype=F64)
    y0 = x0.expand(n, 2).clone()
    ts = torch.tensor([0.0, 0.1, 0.4, 0.8], dtype=F64)
    ys = torchsde.sdeint(process.forward_sde(), y0, ts, method="euler", dt=1e-3)
    a, s = process.marginal(ts[1:])
    for k in range(3):
        x_t = ys[k + 1]
        se_mean = s[k] / math.sqrt(n)
        assert (x_t.mean(0) - a[k] * x0).abs().max() < 5 * se_mean + 1e-3 * s[k]
        ratio = x_t.var(0) / s[k] ** 2
        assert (ratio - 1).abs().max() < 0.1, (name, ts[k + 1].item(), ratio)


def test_chain_marginal_matches_running_the_chain():
    """x_k = √(1-β_k) x_{k-1} + √β_k z, run step by step, has moments (√ᾱ_k x0, 1 - ᾱ_k)."""
    chain = PROCESSES["chain"]()
    torch.manual_seed(1)
    n, x0 = 20000, 2.0
    x = torch.full((n,), x0, dtype=F64)
    for k in range(1, 61):
        beta = chain.betas[k - 1]
        x = torch.sqrt(1 - beta) * x + torch.sqrt(beta) * torch.randn(n, dtype=F64)
    a, s = chain.marginal(torch.tensor(60 / chain.K, dtype=F64))
    abar = torch.prod(1 - chain.betas[:60])
    torch.testing.assert_close(a, abar.sqrt())
    assert abs(x.mean() - a * x0) < 5 * s / math.sqrt(n)
    assert abs(x.var() / s**2 - 1) < 0.05


def test_log_snr_round_trip_and_bisection(process):
    t = torch.tensor([2e-3, 0.05, 0.3, 0.7, 0.99], dtype=F64)
    lam = process.log_snr(t)
    a, s = process.marginal(t)
    torch.testing.assert_close(lam, torch.log(a**2 / s**2))
    assert bool((lam[1:] < lam[:-1]).all()), "log-SNR must decrease in t"
    torch.testing.assert_close(process.t_from_log_snr(lam), t, rtol=1e-6, atol=1e-9)
    torch.testing.assert_close(Process.t_from_log_snr(process, lam), t, rtol=1e-6, atol=1e-9)


def test_closed_form_vp_values():
    """Independently written VP kernel: a = exp(-¼ t² Δ - ½ t β_min)."""
    t = torch.tensor([0.25, 0.75], dtype=F64)
    a, s = VPSDE().marginal(t)
    expect_a = torch.exp(-0.25 * t**2 * 19.9 - 0.5 * t * 0.1)
    torch.testing.assert_close(a, expect_a)
    torch.testing.assert_close(s, torch.sqrt(1 - expect_a**2))
    _, s_sub = SubVPSDE().marginal(t)
    torch.testing.assert_close(s_sub, 1 - expect_a**2)


def test_affine_numerical_kernel_matches_vp_closed_form():
    t = torch.linspace(0, 1, 37, dtype=F64)
    a, s = make_affine().marginal(t)
    a_ref, s_ref = VPSDE().marginal(t)
    torch.testing.assert_close(a, a_ref, rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(s, s_ref, rtol=1e-5, atol=1e-5)


def test_reverse_sde_drift_against_hand_formula():
    """VP: reverse drift in solver time r = -t is -(−½β x − β score); PF-ODE halves the score
    term and has no noise (Song et al. 2021, eqs. 6 and 13)."""
    process = VPSDE()
    x = torch.randn(5, 3, dtype=F64)

    def score_fn(x, t):
        return -x * (1 + t[:, None])

    t = 0.37
    r = torch.tensor(-t, dtype=F64)
    beta = vp_beta(t)
    score = -x * (1 + t)
    sde = process.reverse_sde(score_fn)
    torch.testing.assert_close(sde.f(r, x), -(-0.5 * beta * x - beta * score))
    torch.testing.assert_close(sde.g(r, x), torch.full_like(x, math.sqrt(beta)))
    ode = process.reverse_sde(score_fn, probability_flow=True)
    torch.testing.assert_close(ode.f(r, x), -(-0.5 * beta * x - 0.5 * beta * score))
    torch.testing.assert_close(ode.g(r, x), torch.zeros_like(x))
    assert torch.equal(sde.solver_times(torch.tensor([1.0, 0.5])), torch.tensor([-1.0, -0.5]))


def test_reverse_sde_reshapes_for_event_shape():
    seen = []

    def score_fn(x, t):
        seen.append(x.shape)
        return torch.zeros_like(x)

    sde = VPSDE().reverse_sde(score_fn, event_shape=(2, 3))
    assert sde.f(torch.tensor(-0.5), torch.zeros(4, 6)).shape == (4, 6)
    assert seen == [(4, 2, 3)]


def test_prior_sample_and_log_prob(process):
    g = torch.Generator().manual_seed(3)
    x = process.prior_sample((4000, 2), generator=g, dtype=F64)
    s_T = process.marginal(torch.tensor(process.T, dtype=F64))[1]
    assert abs(x.std() / s_T - 1) < 0.05
    ref = torch.distributions.Normal(0.0, s_T).log_prob(x[:5]).sum(-1)
    torch.testing.assert_close(process.prior_log_prob(x[:5]), ref)


def test_drift_and_expand_like():
    process = VPSDE()
    x = torch.randn(3, 2, 2, dtype=F64)
    t = torch.tensor([0.1, 0.5, 0.9], dtype=F64)
    expect = torch.stack([-0.5 * vp_beta(t[i]) * x[i] for i in range(3)])
    torch.testing.assert_close(process.drift(x, t), expect)
    assert expand_like(t, x).shape == (3, 1, 1)
    assert expand_like(torch.tensor(0.3), x).shape == ()


@pytest.mark.parametrize(
    ("make", "needle"),
    [
        (lambda: VPSDE(beta_min=-1.0), "-1.0"),
        (lambda: VESDE(sigma_min=1.0, sigma_max=0.5), "0.5"),
        (lambda: VPSDE(t_min=0.0), "0.0"),
        (lambda: DiscreteChain([0.1, 1.5]), "1.5"),
        (lambda: AffineSDE(torch.zeros_like, torch.ones_like, t_min=2.0), "2.0"),
    ],
)
def test_bad_parameters_raise_quoting_the_value(make, needle):
    with pytest.raises(ValueError, match=needle):
        make()
