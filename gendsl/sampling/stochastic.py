"""Stochastic samplers of the reverse process: ancestral (DDPM posterior), Euler–Maruyama,
torchsde solvers, and predictor–corrector."""

from __future__ import annotations

import torch
import torchsde
from torch import Tensor

from gendsl.processes import Process, ScoreFn, as_time, expand_like, x0_from_score
from gendsl.sampling.common import Callback, lands_on_data, noise_like

__all__ = [
    "ancestral",
    "euler_maruyama",
    "langevin_step_size",
    "pc",
    "posterior_coefficients",
    "reverse_em_step",
    "sde",
]

STRATONOVICH_METHODS = frozenset({"heun", "midpoint", "reversible_heun", "log_ode"})


def posterior_coefficients(
    a_t: Tensor, s_t: Tensor, a_s: Tensor, s_s: Tensor
) -> tuple[Tensor, Tensor, Tensor]:
    """q(x_s | x_t, x0) = N(c_t x_t + c_0 x0, v I) for s < t of an affine process:
    with a_{t|s} = a_t/a_s and s²_{t|s} = s_t² - a_{t|s}² s_s²,
    c_t = a_{t|s} s_s²/s_t², c_0 = a_s s²_{t|s}/s_t², v = s²_{t|s} s_s²/s_t²
    (Kingma et al. 2021, "Variational Diffusion Models", appendix A; Ho et al. 2020, eq. 7)."""
    a_ts = a_t / a_s
    s2_ts = s_t**2 - a_ts**2 * s_s**2
    return a_ts * s_s**2 / s_t**2, a_s * s2_ts / s_t**2, s2_ts * s_s**2 / s_t**2


@lands_on_data
def ancestral(
    process: Process,
    score_fn: ScoreFn,
    x: Tensor,
    ts: Tensor,
    *,
    generator: torch.Generator | None = None,
    callback: Callback | None = None,
) -> Tensor:
    """Ancestral sampling from q(x_s | x_t, x0̂) with x0̂ from Tweedie's formula (Ho et al. 2020,
    Alg. 2).  On a ``DiscreteChain`` with ts on the grid k/K this is exactly DDPM's step with
    variance β̃_k."""
    for i in range(ts.numel() - 1):
        x = ancestral_step(process, score_fn, x, ts[i], ts[i + 1], generator)
        if callback is not None:
            callback(i, ts[i + 1], x)
    return x


def ancestral_step(
    process: Process,
    score_fn: ScoreFn,
    x: Tensor,
    t: Tensor,
    t_next: Tensor,
    generator: torch.Generator | None,
) -> Tensor:
    """One draw from q(x_s | x_t, x0̂), x0̂ = (x + s_t² ∇log p_t)/a_t (Tweedie), s = t_next."""
    t, s = as_time(t, x), as_time(t_next, x)
    (a_t, s_t), (a_s, s_s) = process.marginal(t), process.marginal(s)
    x0_hat = x0_from_score(x, score_fn(x, t), a_t, s_t)
    c_t, c_0, v = posterior_coefficients(a_t, s_t, a_s, s_s)
    x = expand_like(c_t, x) * x + expand_like(c_0, x) * x0_hat
    return x + expand_like(v.sqrt(), x) * noise_like(x, generator)


def reverse_em_step(
    process: Process,
    score_fn: ScoreFn,
    x: Tensor,
    t: Tensor,
    t_next: Tensor,
    generator: torch.Generator | None,
) -> Tensor:
    """x + [f x - g² ∇log p_t] Δt + g √(-Δt) z with Δt = t_next - t < 0."""
    dt = t_next - t
    t = as_time(t, x)
    drift = process.reverse_drift(x, t, score_fn(x, t), probability_flow=False)
    g_t = expand_like(process.g(t), x)
    return x + drift * dt + g_t * (-dt).sqrt() * noise_like(x, generator)


@lands_on_data
def euler_maruyama(
    process: Process,
    score_fn: ScoreFn,
    x: Tensor,
    ts: Tensor,
    *,
    generator: torch.Generator | None = None,
    callback: Callback | None = None,
) -> Tensor:
    """Euler–Maruyama on the reverse SDE dx = [f x - g² ∇log p_t] dt + g dw̄ (Song et al. 2021,
    eq. 6), with dt < 0."""
    for i in range(ts.numel() - 1):
        x = reverse_em_step(process, score_fn, x, ts[i], ts[i + 1], generator)
        if callback is not None:
            callback(i, ts[i + 1], x)
    return x


@lands_on_data
def sde(
    process: Process,
    score_fn: ScoreFn,
    x: Tensor,
    ts: Tensor,
    *,
    generator: torch.Generator | None = None,
    callback: Callback | None = None,
    solver: str = "euler",
) -> Tensor:
    """The reverse SDE solved by ``torchsde.sdeint`` (Li et al. 2020) with one ``solver`` step per
    interval of ``ts``.  Itô and Stratonovich forms agree because g does not depend on x, so
    Stratonovich methods (``heun``, ``midpoint``, ...) are accepted too."""
    shape = x.shape
    rsde = process.reverse_sde(score_fn, event_shape=shape[1:])
    if solver in STRATONOVICH_METHODS:
        rsde.sde_type = "stratonovich"
    r = rsde.solver_times(ts)
    y = x.reshape(shape[0], -1)
    seed = int(torch.randint(0, 2**62, (), generator=generator, device=x.device))
    bm = torchsde.BrownianInterval(
        t0=r[0],
        t1=r[-1],
        size=y.shape,
        dtype=y.dtype,
        device=y.device,
        entropy=seed,
        levy_area_approximation="space-time",
    )
    for i in range(ts.numel() - 1):
        y = torchsde.sdeint(
            rsde, y, r[i : i + 2], method=solver, dt=(r[i + 1] - r[i]).item(), bm=bm
        )[-1]
        if callback is not None:
            callback(i, ts[i + 1], y.reshape(shape))
    return y.reshape(shape)


def langevin_step_size(score: Tensor, z: Tensor, snr: float, alpha: Tensor) -> Tensor:
    """ε = 2 α (r ‖z‖ / ‖∇log p‖)² with the norms averaged over the batch, as in Song et al.'s
    reference code (2021, Alg. 4-5, target signal-to-noise ratio r): per-sample norms would
    take huge steps where the score vanishes (at a mode's centre)."""
    z_norm = z.reshape(z.shape[0], -1).norm(dim=1).mean()
    score_norm = score.reshape(score.shape[0], -1).norm(dim=1).mean().clamp_min(1e-12)
    return 2 * alpha * (snr * z_norm / score_norm) ** 2


@lands_on_data
def pc(
    process: Process,
    score_fn: ScoreFn,
    x: Tensor,
    ts: Tensor,
    *,
    generator: torch.Generator | None = None,
    callback: Callback | None = None,
    snr: float = 0.16,
    corrector_steps: int = 1,
) -> Tensor:
    """Predictor–corrector sampling (Song et al. 2021, Alg. 1-2): an ancestral predictor to the
    next time, then ``corrector_steps`` Langevin steps there, x ← x + ε ∇log p + √(2ε) z, with
    α = (a_t / a_{t_prev})² (Alg. 2's α_i = 1 - β_i for VP, 1 for VE).

    The predictor is the ancestral (reverse-diffusion) step, which removes exactly the variance
    the forward kernel added between the two levels (Song et al. 2021, app. E; Ho et al. 2020),
    not Euler–Maruyama: EM's g(t)² Δt overshoots that variance when a step is large (a 10-step
    VE schedule adds several times the current variance per step) and the chain diverges."""
    if not snr > 0:
        raise ValueError(f"snr must be > 0, got {snr}")
    for i in range(ts.numel() - 1):
        x = ancestral_step(process, score_fn, x, ts[i], ts[i + 1], generator)
        t = as_time(ts[i + 1], x)
        alpha = (process.marginal(t)[0] / process.marginal(as_time(ts[i], x))[0]) ** 2
        for _ in range(corrector_steps):
            score, z = score_fn(x, t), noise_like(x, generator)
            eps = expand_like(langevin_step_size(score, z, snr, alpha), x)
            x = x + eps * score + (2 * eps).sqrt() * z
        if callback is not None:
            callback(i, ts[i + 1], x)
    return x
