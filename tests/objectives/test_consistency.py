"""Consistency models: boundary parameterisation, Karras levels, the VP-to-VE map, distillation
and training losses at the closed-form consistency function of Gaussian data, and sampling.

For data N(μ, σ0² I) the VE marginal is p_σ = N(μ, (σ0² + σ²) I); its PF-ODE keeps the z-score
(x - μ)/√(σ0² + σ²), so the ideal consistency function is
f*(x, σ) = μ + (x - μ) √(σ0² + σ_min²)/√(σ0² + σ²)."""

from __future__ import annotations

import math

import pytest
import torch

from gendsl.errors import UsageError
from gendsl.objectives.consistency import (
    c_out,
    c_skip,
    consistency_distillation_loss,
    consistency_fn,
    consistency_sample,
    consistency_training_loss,
    ct_ema_decay,
    ct_num_steps,
    distance,
    ict_num_steps,
    karras_sigmas,
    process_sigma_range,
    ve_score_from_process,
)
from gendsl.processes import VPSDE, sigma_of_t, t_of_sigma

DT = torch.float64
MU = torch.tensor([1.0, -0.5], dtype=DT)
SIGMA0 = 0.5


def ideal_f(sigma_min: float, power: float = 1.0):
    """f*(x, σ); ``power`` ≠ 1 raises its ratio to a power, which keeps f(x, σ_min) = x but is
    no longer constant along PF-ODE trajectories (a mere rescaling of f* would still be)."""

    def f(x, sigma):
        r = math.sqrt(SIGMA0**2 + sigma_min**2) / torch.sqrt(SIGMA0**2 + sigma**2)
        return MU + (x - MU) * (r**power)[:, None]

    return f


def ve_gaussian_score(y, sigma):
    return -(y - MU) / (SIGMA0**2 + sigma**2)[:, None]


def data(n, gen):
    return MU + SIGMA0 * torch.randn(n, 2, generator=gen, dtype=DT)


def test_c_skip_and_c_out_hand_values():
    sigma = torch.tensor([0.002, 1.0, 3.0], dtype=DT)
    torch.testing.assert_close(
        c_skip(sigma, sigma_data=0.5, sigma_min=0.002),
        torch.tensor([1.0, 0.2006414104609616, 0.027062122943441024], dtype=DT),
    )
    torch.testing.assert_close(
        c_out(sigma, sigma_data=0.5, sigma_min=0.002),
        torch.tensor([0.0, 0.446319168308958, 0.4928681639414612], dtype=DT),
    )


def test_boundary_condition_holds_exactly():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(7, 3, generator=gen)
    net = torch.nn.Linear(4, 3)

    def F(u, sigma):
        return net(torch.cat([u, sigma[:, None]], dim=1)) * 100

    sigma_min = 0.01
    f_x = consistency_fn(F, x, torch.full((7,), sigma_min), sigma_data=0.7, sigma_min=sigma_min)
    assert torch.equal(f_x, x)
    assert not torch.allclose(consistency_fn(F, x, torch.full((7,), 1.0), sigma_min=sigma_min), x)


def test_karras_sigmas():
    s = karras_sigmas(5, 0.002, 80.0, 7.0, dtype=DT)
    assert s[0].item() == pytest.approx(0.002) and s[-1].item() == pytest.approx(80.0)
    assert torch.all(s[1:] > s[:-1])
    mid = ((0.002 ** (1 / 7) + 80.0 ** (1 / 7)) / 2) ** 7
    assert s[2].item() == pytest.approx(mid)
    torch.testing.assert_close(
        karras_sigmas(4, 1.0, 4.0, 1.0, dtype=DT), torch.arange(1.0, 5.0, dtype=DT)
    )
    with pytest.raises(UsageError, match="got 1"):
        karras_sigmas(1)


def test_vp_process_maps_onto_the_ve_gaussian_score():
    proc = VPSDE()

    def vp_score(x, t):
        a, s = proc.marginal(t)
        return -(x - a[:, None] * MU) / (a**2 * SIGMA0**2 + s**2)[:, None]

    t = torch.tensor([0.01, 0.3, 0.9], dtype=DT)
    sigma = sigma_of_t(proc, t)
    torch.testing.assert_close(t_of_sigma(proc, sigma), t)
    y = torch.tensor([[0.2, 0.4], [-1.0, 3.0], [10.0, -7.0]], dtype=DT)
    got = ve_score_from_process(proc, vp_score)(y, sigma)
    torch.testing.assert_close(got, ve_gaussian_score(y, sigma))


def cd_loss(f_theta, teacher, sigmas, solver="heun", seed=1, n=4000):
    gen = torch.Generator().manual_seed(seed)
    return consistency_distillation_loss(
        f_theta, f_theta, teacher, data(n, gen), sigmas, solver=solver, generator=gen
    )


def test_distillation_loss_vanishes_at_the_ideal_consistency_function():
    sigma_min = 0.002
    sigmas = karras_sigmas(100, sigma_min, 80.0, dtype=DT)
    ideal = cd_loss(ideal_f(sigma_min), ve_gaussian_score, sigmas).mean()
    euler = cd_loss(ideal_f(sigma_min), ve_gaussian_score, sigmas, solver="euler").mean()
    perturbed = cd_loss(ideal_f(sigma_min, power=0.8), ve_gaussian_score, sigmas).mean()
    assert ideal < 1e-4 * perturbed
    assert 100 * ideal < euler < 0.01 * perturbed  # Heun (order 2) beats Euler (order 1)


def test_distillation_from_a_vp_teacher():
    proc = VPSDE()

    def vp_score(x, t):
        a, s = proc.marginal(t)
        return -(x - a[:, None] * MU) / (a**2 * SIGMA0**2 + s**2)[:, None]

    sigma_min, sigma_max = process_sigma_range(proc)
    sigmas = karras_sigmas(100, sigma_min, sigma_max, dtype=DT)
    teacher = ve_score_from_process(proc, vp_score)
    ideal = cd_loss(ideal_f(sigma_min), teacher, sigmas).mean()
    perturbed = cd_loss(ideal_f(sigma_min, power=0.8), teacher, sigmas).mean()
    assert ideal < 1e-4 * perturbed


def test_training_loss_uses_the_same_noise_at_both_levels():
    """For a point mass at μ the ideal f*(x, σ) = μ + (x - μ) σ_min/σ sends x0 + σ z to
    μ + σ_min z at every σ, so the CT loss is zero only if both levels share z."""
    sigma_min = 0.002
    sigmas = karras_sigmas(10, sigma_min, 80.0, dtype=DT)

    def f(power):
        def fn(x, sigma):
            return MU + (x - MU) * ((sigma_min / sigma) ** power)[:, None]

        return fn

    x0 = MU.expand(500, 2)
    losses = []
    for power in (1.0, 0.95):
        gen = torch.Generator().manual_seed(2)
        losses.append(consistency_training_loss(f(power), f(power), x0, sigmas, generator=gen))
    assert losses[0].abs().max() < 1e-20
    assert losses[1].mean() > 1e-8


def test_distance_and_reciprocal_weighting():
    a = torch.tensor([[3.0, 4.0]], dtype=DT)
    b = torch.zeros(1, 2, dtype=DT)
    assert distance(a, b).item() == pytest.approx(25.0)
    assert distance(a, b, metric="pseudo_huber", c=1.0).item() == pytest.approx(math.sqrt(26) - 1)
    c = 0.00054 * math.sqrt(2)
    got = distance(a, b, metric="pseudo_huber").item()
    assert got == pytest.approx(math.sqrt(25 + c**2) - c)
    sigmas = torch.tensor([0.5, 2.0], dtype=DT)
    out = []
    for weighting in ("uniform", "reciprocal"):
        gen = torch.Generator().manual_seed(3)
        f = ideal_f(0.002, power=0.9)
        out.append(
            consistency_training_loss(
                f, f, data(8, gen), sigmas, weighting=weighting, generator=gen
            )
        )
    torch.testing.assert_close(out[1], out[0] / 1.5)
    with pytest.raises(UsageError, match="'l1'"):
        distance(a, b, metric="l1")


def test_curricula():
    assert ct_num_steps(0, 1000, s0=2, s1=150) == 2
    assert ct_num_steps(1000, 1000, s0=2, s1=150) == 151
    steps = [ct_num_steps(k, 1000) for k in range(0, 1001, 50)]
    assert steps == sorted(steps)
    assert ct_ema_decay(0, 1000, mu0=0.9) == pytest.approx(0.9)
    assert ct_ema_decay(1000, 1000, mu0=0.9) == pytest.approx(0.9 ** (2 / 151))
    # iCT: K' = ⌊K / 8⌋ stages of doubling from s0 = 10 up to s1 = 1280.
    assert ict_num_steps(0, 800_000) == 11
    assert ict_num_steps(100_000, 800_000) == 21
    assert ict_num_steps(799_999, 800_000) == 1281


def test_one_and_two_step_sampling_moments():
    """x1 = f*(σ_max z) and x2 = f*(x1 + √(τ² - σ_min²) z', τ), with f* affine, have means and
    variances from the affine maps."""
    sigma_min, sigma_max, tau = 0.3, 80.0, 0.8  # a large σ_min makes √(τ² - σ_min²) matter
    f = ideal_f(sigma_min)

    def r(s):
        return math.sqrt(SIGMA0**2 + sigma_min**2) / math.sqrt(SIGMA0**2 + s**2)

    B = 20000
    gen = torch.Generator().manual_seed(4)
    x1 = consistency_sample(f, (B, 2), [sigma_max], sigma_min=sigma_min, generator=gen, dtype=DT)
    m1, v1 = MU * (1 - r(sigma_max)), (r(sigma_max) * sigma_max) ** 2
    gen = torch.Generator().manual_seed(5)
    x2 = consistency_sample(
        f, (B, 2), [sigma_max, tau], sigma_min=sigma_min, generator=gen, dtype=DT
    )
    m2 = MU + (m1 - MU) * r(tau)
    v2 = r(tau) ** 2 * (v1 + tau**2 - sigma_min**2)
    for x, m, v in ((x1, m1, v1), (x2, m2, v2)):
        assert torch.all((x.mean(0) - m).abs() < 4 * math.sqrt(v / B))
        torch.testing.assert_close(x.var(0), torch.full((2,), v, dtype=DT), rtol=0.05, atol=0)


def test_consistency_from_denoiser_reads_a_denoiser_as_an_edm_network():
    """For N(0, σ_d²) data the exact denoiser is D(x, σ) = σ_d²/(σ² + σ_d²) x, whose EDM
    network F = (D - ĉ_skip x)/ĉ_out is 0 (Karras et al. 2022, Table 1): f = c_skip(σ) x.  A
    denoiser that adds 1 has F = 1/ĉ_out, so f gains c_out(σ)/ĉ_out(σ) = (σ - σ_min)/σ."""
    from gendsl.objectives.consistency import c_skip, consistency_from_denoiser

    sd, lo = 0.5, 0.002
    x = torch.randn(6, 3, dtype=torch.float64)
    sigma = torch.tensor([lo, 0.01, 0.3, 1.0, 7.0, 80.0], dtype=torch.float64)

    def exact(y, s):
        return (sd**2 / (s**2 + sd**2))[:, None] * y

    f = consistency_from_denoiser(exact, x, sigma, sigma_data=sd, sigma_min=lo)
    torch.testing.assert_close(f, c_skip(sigma, sigma_data=sd, sigma_min=lo)[:, None] * x)
    shifted = consistency_from_denoiser(
        lambda y, s: exact(y, s) + 1, x, sigma, sigma_data=sd, sigma_min=lo
    )
    torch.testing.assert_close(shifted - f, ((sigma - lo) / sigma)[:, None].expand_as(x))
    torch.testing.assert_close(shifted[0], x[0], rtol=0, atol=0)  # f(x, σ_min) = x
