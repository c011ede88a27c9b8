"""Sampler identities, convergence orders on a single Gaussian (exact PF-ODE), schedules, and
the dispatcher."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from gendsl.errors import UsageError
from gendsl.processes import VESDE, VPSDE, DiscreteChain, GaussianMixture
from gendsl.sampling import (
    ancestral,
    ddim,
    dpm_solver,
    karras,
    log_snr_jump,
    ode,
    sample,
    sigma_of_t,
    t_of_sigma,
    uniform_log_snr,
    uniform_t,
    unipc,
)
from gendsl.sampling.common import Point, clipped_score, final_x0

F64 = torch.float64
MU, TAU = 1.0, 0.5


def gaussian() -> GaussianMixture:
    return GaussianMixture(torch.tensor([[MU, -MU]], dtype=F64), TAU)


def exact_pf_ode(process, x_T, t_T, t_end):
    """For data N(μ, τ²) the PF-ODE in x̃ = x/a, σ = s/a is dx̃/dσ = σ (x̃ - μ)/(τ² + σ²), so
    x̃(σ) - μ = √((τ² + σ²)/(τ² + σ_T²)) (x̃_T - μ), written out by hand."""
    mu = torch.tensor([MU, -MU], dtype=F64)
    (a_T, s_T), (a_e, s_e) = process.marginal(t_T), process.marginal(t_end)
    sig_T, sig_e = s_T / a_T, s_e / a_e
    scale = torch.sqrt((TAU**2 + sig_e**2) / (TAU**2 + sig_T**2))
    return a_e * (mu + scale * (x_T / a_T - mu))


def fitted_order(run, steps_list):
    errors = [run(n) for n in steps_list]
    slope = np.polyfit(np.log(steps_list), np.log(errors), 1)[0]
    return -slope, errors


CASES = [
    ("euler", lambda p, s, x, ts: ode(p, s, x, ts, solver="euler"), 1),
    ("heun", lambda p, s, x, ts: ode(p, s, x, ts, solver="heun"), 2),
    ("ddim", lambda p, s, x, ts: ddim(p, s, x, ts), 1),
    ("dpm2_multi_data", lambda p, s, x, ts: dpm_solver(p, s, x, ts, order=2), 2),
    ("dpm2_multi_noise", lambda p, s, x, ts: dpm_solver(p, s, x, ts, predict="noise"), 2),
    ("dpm2_single", lambda p, s, x, ts: dpm_solver(p, s, x, ts, order=2, multistep=False), 2),
    ("dpm3_multi", lambda p, s, x, ts: dpm_solver(p, s, x, ts, order=3), 3),
    ("dpm3_single", lambda p, s, x, ts: dpm_solver(p, s, x, ts, order=3, multistep=False), 3),
    ("rk4", lambda p, s, x, ts: ode(p, s, x, ts, solver="rk4"), 4),
    # UniC raises UniP-p to order p + 1 (Zhao et al. 2023, Theorem 3.1); the lowered final
    # step of lower_order_final would cap every order at 2.
    ("unipc1", lambda p, s, x, ts: unipc(p, s, x, ts, order=1, lower_order_final=False), 2),
    ("unipc2_bh2", lambda p, s, x, ts: unipc(p, s, x, ts, lower_order_final=False), 3),
    (
        "unipc2_bh1",
        lambda p, s, x, ts: unipc(p, s, x, ts, variant="bh1", lower_order_final=False),
        3,
    ),
    ("unipc3", lambda p, s, x, ts: unipc(p, s, x, ts, order=3, lower_order_final=False), 4),
]
# Steps per case; UniPC-3 reaches its asymptotic order later (its fitted order is 3.7 on 64-256
# steps and 3.9 on 128-512).
STEPS = {"rk4": [16, 32, 64], "unipc3": [128, 256, 512]}


@pytest.mark.parametrize(("name", "solver", "order"), CASES, ids=[c[0] for c in CASES])
def test_convergence_order_on_a_gaussian(name, solver, order):
    """Error at t_end against the exact flow falls like N^{-order} (diffrax-style order test)."""
    process = VPSDE()
    score_fn = gaussian().score_fn(process)
    x_T = torch.randn(64, 2, generator=torch.Generator().manual_seed(0), dtype=F64)
    t_end = 0.05
    exact = exact_pf_ode(
        process, x_T, torch.tensor(1.0, dtype=F64), torch.tensor(t_end, dtype=F64)
    )

    def run(n):
        ts = uniform_log_snr(process, n, t_end=t_end)
        return (solver(process, score_fn, x_T, ts) - exact).abs().max().item()

    steps = STEPS.get(name, [32, 64, 128])
    measured, errors = fitted_order(run, steps)
    assert abs(measured - order) < 0.35, (name, measured, errors)


def test_unipc_lower_order_final_lowers_the_order():
    """With ``lower_order_final`` the last step is UniP-1 (DDIM, no corrector): order 2."""
    process = VPSDE()
    score_fn = gaussian().score_fn(process)
    x_T = torch.randn(16, 2, generator=torch.Generator().manual_seed(0), dtype=F64)
    exact = exact_pf_ode(process, x_T, torch.tensor(1.0, dtype=F64), torch.tensor(0.05, dtype=F64))

    def run(n):
        ts = uniform_log_snr(process, n, t_end=0.05)
        out = unipc(process, score_fn, x_T, ts, lower_order_final=True)
        return (out - exact).abs().max().item()

    measured, errors = fitted_order(run, [32, 64, 128])
    assert abs(measured - 2) < 0.3, (measured, errors)


@pytest.mark.parametrize(("final", "order"), [("tweedie", 2), ("ab2", 4), ("extrapolate", 4)])
def test_final_step_error_order_in_sigma(final, order):
    """From two points of the exact flow of N(μ, τ²) at σ_p = 2.5 σ and σ, with the exact
    denoiser D = μ + τ²/(τ² + σ²) (x̃ - μ), the error of x̃(0) falls like σ^order: Tweedie's
    shrink is σ²/(2τ²), the second-order final steps leave O(σ⁴/τ⁴)."""
    process = VESDE(sigma_max=20.0)
    x_T = torch.randn(8, 2, generator=torch.Generator().manual_seed(3), dtype=F64) * 20.0
    mu = torch.tensor([MU, -MU], dtype=F64)
    t_T = torch.tensor(1.0, dtype=F64)
    exact = exact_pf_ode(process, x_T, t_T, torch.tensor(0.0, dtype=F64))

    def point(sigma: float) -> Point:
        t = torch.full((8,), t_of_sigma(process, torch.tensor(sigma, dtype=F64)).item(), dtype=F64)
        x = exact_pf_ode(process, x_T, t_T, t[0])
        return Point(t, x, mu + TAU**2 / (TAU**2 + sigma**2) * (x - mu))

    def error(sigma: float) -> float:
        x0 = final_x0(process, final, point(sigma), point(2.5 * sigma))
        return (x0 - exact).abs().max().item()

    measured = math.log(error(0.02) / error(0.01)) / math.log(2)
    assert abs(measured - order) < 0.3, (final, measured)


def test_dopri5_matches_exact_flow():
    process = VESDE(sigma_max=20.0)
    score_fn = gaussian().score_fn(process)
    x_T = process.prior_sample((32, 2), generator=torch.Generator().manual_seed(1), dtype=F64)
    ts = torch.tensor([1.0, 0.3, 0.01], dtype=F64)
    out = ode(process, score_fn, x_T, ts, rtol=1e-8, atol=1e-8)
    exact = exact_pf_ode(process, x_T, ts[0], ts[-1])
    torch.testing.assert_close(out, exact, rtol=1e-5, atol=1e-5)


def test_ancestral_equals_ddim_with_eta_one():
    """Two independently written forms of q(x_s | x_t, x0̂) draw identical samples."""
    process = VPSDE()
    mix = GaussianMixture(torch.tensor([[-1.0, 0.0], [1.0, 0.5]], dtype=F64), 0.1)
    x = torch.randn(50, 2, dtype=F64)
    ts = uniform_t(process, 12, dtype=F64)
    a = ancestral(
        process, mix.score_fn(process), x, ts, generator=torch.Generator().manual_seed(4)
    )
    b = ddim(
        process, mix.score_fn(process), x, ts, eta=1.0, generator=torch.Generator().manual_seed(4)
    )
    torch.testing.assert_close(a, b)


def test_ancestral_on_chain_is_ddpm_step():
    """On a DiscreteChain, one step k → k-1 is Ho et al. 2020 eq. 11 with σ² = β̃_k."""
    chain = DiscreteChain.linear(K=50, beta_1=1e-3, beta_K=0.2)
    mix = GaussianMixture(torch.tensor([[0.5, -0.5]], dtype=F64), 0.3)
    score_fn = mix.score_fn(chain)
    k = 30
    ts = torch.tensor([k / 50, (k - 1) / 50], dtype=F64)
    x = torch.randn(8, 2, dtype=F64)
    out = ancestral(chain, score_fn, x, ts, generator=torch.Generator().manual_seed(2))
    z = torch.randn(8, 2, generator=torch.Generator().manual_seed(2), dtype=F64)
    beta, abar = chain.betas[k - 1], chain.alphas_cumprod[k - 1]
    abar_prev = chain.alphas_cumprod[k - 2]
    eps = -torch.sqrt(1 - abar) * score_fn(x, torch.full((8,), k / 50, dtype=F64))
    mean = (x - beta / torch.sqrt(1 - abar) * eps) / torch.sqrt(1 - beta)
    beta_tilde = (1 - abar_prev) / (1 - abar) * beta
    torch.testing.assert_close(out, mean + beta_tilde.sqrt() * z)


@pytest.mark.parametrize("predict", ["data", "noise"])
def test_first_order_dpm_solver_and_sigma_euler_are_ddim(predict):
    """DPM-Solver-1 = DPM-Solver++1 = DDIM (Lu et al. 2022, Prop. 4.1) = Euler in σ (Karras)."""
    process = VPSDE()
    mix = GaussianMixture(torch.tensor([[-1.0, 0.0], [1.0, 0.5]], dtype=F64), 0.2)
    x = torch.randn(20, 2, dtype=F64)
    ts = karras(process, 9, dtype=F64)
    ref = ddim(process, mix.score_fn(process), x, ts)
    out = dpm_solver(process, mix.score_fn(process), x, ts, order=1, predict=predict)
    torch.testing.assert_close(out, ref)
    torch.testing.assert_close(ode(process, mix.score_fn(process), x, ts, solver="euler"), ref)


def test_schedules_follow_their_formulas():
    process = VPSDE()
    for sched in (uniform_t, uniform_log_snr, karras):
        ts = sched(process, 10)
        assert ts.shape == (11,)
        assert ts[0].item() == 1.0 and math.isclose(ts[-1].item(), 1e-3)
        assert bool((ts[1:] < ts[:-1]).all())
    lam = process.log_snr(uniform_log_snr(process, 10))
    torch.testing.assert_close(
        lam.diff(), torch.full((10,), (lam[-1] - lam[0]).item() / 10, dtype=F64)
    )
    sig = sigma_of_t(process, karras(process, 10, rho=7.0))
    s_max, s_min = sig[0].item(), sig[-1].item()
    expect = [
        (s_max ** (1 / 7) + i / 10 * (s_min ** (1 / 7) - s_max ** (1 / 7))) ** 7 for i in range(11)
    ]
    torch.testing.assert_close(sig, torch.tensor(expect, dtype=F64))
    with pytest.raises(ValueError, match="0"):
        uniform_t(process, 0)


def test_log_snr_jump_is_one_jump_then_uniform_log_snr():
    """σ_0 = σ(T), σ_1 = σ_cap, then λ uniform down to σ(t_end); no cap above σ(T)."""
    process = VPSDE()
    sig = sigma_of_t(process, log_snr_jump(process, 9, sigma_cap=20.0))
    assert sig.shape == (10,)
    torch.testing.assert_close(sig[0], sigma_of_t(process, torch.tensor(1.0, dtype=F64)))
    torch.testing.assert_close(sig[1], torch.tensor(20.0, dtype=F64))
    step = math.log(sig[-1].item() / 20.0) / 8
    torch.testing.assert_close(sig[1:].log().diff(), torch.full((8,), step, dtype=F64))
    ves = VESDE(sigma_max=10.0)
    torch.testing.assert_close(log_snr_jump(ves, 6, sigma_cap=20.0), uniform_log_snr(ves, 6))
    with pytest.raises(ValueError, match="-1"):
        log_snr_jump(process, 5, sigma_cap=-1.0)


def test_schedule_knobs_reach_the_schedule():
    """``sigma_cap`` goes to the schedule: a cap above σ(T) gives the uniform-λ samples."""
    process = VPSDE()
    score_fn = gaussian().score_fn(process)
    runs = [
        sample(
            process,
            score_fn,
            (8, 2),
            method="dpm_solver",
            steps=8,
            dtype=F64,
            generator=torch.Generator().manual_seed(3),
            **kw,
        ).x
        for kw in ({"sigma_cap": 1e3}, {"schedule": "uniform_log_snr"}, {"sigma_cap": 5.0})
    ]
    torch.testing.assert_close(runs[0], runs[1])
    assert not torch.allclose(runs[0], runs[2])


def test_dispatcher_counts_evaluations_and_rejects_unknown_names():
    process = VPSDE()
    score_fn = gaussian().score_fn(process)
    r = sample(process, score_fn, (4, 2), method="dpm_solver", steps=10, dtype=F64)
    assert r.nfe == 10 and r.x.shape == (4, 2)
    r = sample(process, score_fn, (4, 2), method="dpm_solver", steps=5, order=3, multistep=False)
    assert r.nfe == 3 * 4 + 1
    r = sample(process, score_fn, (4, 2), method="ode", steps=5, solver="heun", denoise=False)
    assert r.nfe == 2 * 5
    for final in ("tweedie", "ab2"):
        r = sample(process, score_fn, (4, 2), method="unipc", steps=10, order=3, final=final)
        assert r.nfe == 10
    seen = []
    sample(
        process, score_fn, (4, 2), method="ddim", steps=6, callback=lambda i, t, x: seen.append(i)
    )
    assert seen == list(range(6))
    with pytest.raises(ValueError, match="bh3"):
        sample(process, score_fn, (4, 2), method="unipc", variant="bh3")
    with pytest.raises(ValueError, match="'ab3'"):
        sample(process, score_fn, (4, 2), method="dpm_solver", final="ab3")
    with pytest.raises(UsageError, match="ancestral, ddim, dpm_solver"):
        sample(process, score_fn, (4, 2), method="nope")
    with pytest.raises(UsageError, match="nope"):
        sample(process, score_fn, (4, 2), schedule="nope")


def test_same_generator_same_samples():
    process = VPSDE()
    score_fn = gaussian().score_fn(process)
    runs = [
        sample(
            process,
            score_fn,
            (16, 2),
            method="pc",
            steps=20,
            generator=torch.Generator().manual_seed(7),
        ).x
        for _ in range(2)
    ]
    assert torch.equal(runs[0], runs[1])


# ------------------------------------------------------------------------------ clipping
def _constant_x0_score(process, value: float):
    """The score of a denoiser that predicts x̂0 = value everywhere (score_from_x0)."""

    def score(x, t):
        a_t, s_t = process.marginal(torch.as_tensor(t, dtype=x.dtype).expand(x.shape[0]))
        return -(x - a_t[:, None] * value) / s_t[:, None] ** 2

    return score


@pytest.mark.parametrize("value, expected", [(1.7, 1.0), (-0.4, 0.0), (0.3, 0.3)])
def test_clipped_score_denoises_to_the_clipped_estimate(value, expected):
    """Tweedie's x̂0 of the clipped score is clip(x̂0, 0, 1); inside [0, 1] nothing changes."""
    process = VPSDE(0.1, 20.0)
    score = clipped_score(process, _constant_x0_score(process, value))
    x = torch.randn(5, 3, dtype=F64)
    for t in (0.9, 0.3, 0.01):
        a_t, s_t = process.marginal(torch.full((5,), t, dtype=F64))
        x0 = (x + s_t[:, None] ** 2 * score(x, torch.tensor(t, dtype=F64))) / a_t[:, None]
        torch.testing.assert_close(x0, torch.full_like(x, expected))


@pytest.mark.parametrize("method", ["ddim", "dpm_solver", "ancestral"])
def test_a_clipped_sampler_lands_in_the_data_range(method):
    """A denoiser predicting x̂0 = 1.7 everywhere: DDIM and DPM-Solver land on exactly 1.7
    unclipped and 1.0 clipped (each step moves toward the estimate); the ancestral chain's
    last step lands on its estimate too."""
    process = VPSDE(0.1, 20.0)
    raw = _constant_x0_score(process, 1.7)
    g = torch.Generator().manual_seed(0)
    plain = sample(process, raw, (64, 2), method=method, steps=10, generator=g, dtype=F64).x
    g = torch.Generator().manual_seed(0)
    clipped = clipped_score(process, raw)
    x = sample(process, clipped, (64, 2), method=method, steps=10, generator=g, dtype=F64).x
    torch.testing.assert_close(plain, torch.full_like(plain, 1.7))
    torch.testing.assert_close(x, torch.ones_like(x))
