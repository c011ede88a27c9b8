"""Deterministic samplers of the probability-flow ODE: torchdiffeq solvers, fixed-step Euler and
Heun in the σ parameterisation, and DDIM (with optional noise η)."""

from __future__ import annotations

import torch
import torchdiffeq
from torch import Tensor

from gendsl.processes import Process, ScoreFn, as_time, expand_like, x0_from_score
from gendsl.sampling.common import Callback, lands_on_data, noise_like

__all__ = ["ddim", "ddim_step", "ode", "sigma_derivative"]


def _scaled_state(process: Process, score_fn: ScoreFn, x: Tensor, t: Tensor):
    """(a_t, σ_t = s_t/a_t, x̃ = x/a_t, D = E[x0 | x_t]) at time t."""
    t = as_time(t, x)
    a_t, s_t = process.marginal(t)
    return a_t, s_t / a_t, x / expand_like(a_t, x), x0_from_score(x, score_fn(x, t), a_t, s_t)


def sigma_derivative(x_tilde: Tensor, sigma: Tensor, denoised: Tensor) -> Tensor:
    """dx̃/dσ = (x̃ - D(x̃; σ)) / σ: the PF-ODE of x̃ = x/a in σ = s/a, the same for every
    affine process (Karras et al. 2022, eqs. 3-4 with s(t) = a_t)."""
    return (x_tilde - denoised) / expand_like(sigma, x_tilde)


def _euler_or_heun(process, score_fn, x, ts, callback, heun: bool) -> Tensor:
    """Karras et al. 2022, Alg. 1 (Heun, 2nd order) or its Euler predictor alone (1st order)."""
    for i in range(ts.numel() - 1):
        _, sigma, x_tilde, denoised = _scaled_state(process, score_fn, x, ts[i])
        d = sigma_derivative(x_tilde, sigma, denoised)
        a_n, s_n = process.marginal(as_time(ts[i + 1], x))
        sigma_n = s_n / a_n
        step = expand_like(sigma_n - sigma, x)
        x_tilde_next = x_tilde + step * d
        if heun:
            x_next = expand_like(a_n, x) * x_tilde_next
            _, _, _, denoised_n = _scaled_state(process, score_fn, x_next, ts[i + 1])
            d_n = sigma_derivative(x_tilde_next, sigma_n, denoised_n)
            x_tilde_next = x_tilde + step * 0.5 * (d + d_n)
        x = expand_like(a_n, x) * x_tilde_next
        if callback is not None:
            callback(i, ts[i + 1], x)
    return x


@lands_on_data
def ode(
    process: Process,
    score_fn: ScoreFn,
    x: Tensor,
    ts: Tensor,
    *,
    generator: torch.Generator | None = None,
    callback: Callback | None = None,
    solver: str = "dopri5",
    rtol: float = 1e-5,
    atol: float = 1e-5,
) -> Tensor:
    """The probability-flow ODE dx/dt = f x - ½ g² ∇log p_t (Song et al. 2021, eq. 13).

    ``solver="euler"`` / ``"heun"`` take one fixed step per interval in (σ, x/a) (Karras et
    al. 2022, Alg. 1); any other name is a ``torchdiffeq.odeint`` method (Chen et al. 2018)
    applied to the same ODE written in log σ, dx̃/d log σ = x̃ - D(x̃), which is smooth where
    the t form is stiff (near t = 0 for narrow data).  Adaptive methods are controlled by
    ``rtol``/``atol`` and report at ``ts``.  ``generator`` is unused: the ODE is deterministic.
    """
    if solver in ("euler", "heun"):
        return _euler_or_heun(process, score_fn, x, ts, callback, heun=solver == "heun")

    def drift(log_sigma: Tensor, x_tilde: Tensor) -> Tensor:
        t = as_time(process.t_from_log_snr(-2 * log_sigma), x_tilde)
        a_t, s_t = process.marginal(t)
        x_t = expand_like(a_t, x_tilde) * x_tilde
        return x_tilde - x0_from_score(x_t, score_fn(x_t, t), a_t, s_t)

    a, s = process.marginal(ts)
    x_tildes = torchdiffeq.odeint(
        drift, x / a[0], torch.log(s / a), method=solver, rtol=rtol, atol=atol
    )
    if callback is not None:
        for i in range(ts.numel() - 1):
            callback(i, ts[i + 1], a[i + 1] * x_tildes[i + 1])
    return a[-1] * x_tildes[-1]


def ddim_step(
    x: Tensor,
    x0_hat: Tensor,
    eps_hat: Tensor,
    a_s: Tensor,
    s_s: Tensor,
    sigma: Tensor,
    z: Tensor,
) -> Tensor:
    """x_s = a_s x0̂ + √(s_s² - σ²) ε̂ + σ z (Song, Meng & Ermon 2021, "Denoising Diffusion
    Implicit Models", eq. 12, with √ᾱ → a and √(1-ᾱ) → s)."""
    a_s, s_s, sigma = (expand_like(v, x) for v in (a_s, s_s, sigma))
    return a_s * x0_hat + (s_s**2 - sigma**2).clamp_min(0).sqrt() * eps_hat + sigma * z


@lands_on_data
def ddim(
    process: Process,
    score_fn: ScoreFn,
    x: Tensor,
    ts: Tensor,
    *,
    generator: torch.Generator | None = None,
    callback: Callback | None = None,
    eta: float = 0.0,
) -> Tensor:
    """DDIM (Song, Meng & Ermon 2021) for any affine process, with noise
    σ = η √(s_s² (1 - a_t² s_s² / (a_s² s_t²))) (eq. 16): η = 0 is deterministic, η = 1 is the
    ancestral sampler."""
    if eta < 0:
        raise ValueError(f"eta must be >= 0, got {eta}")
    for i in range(ts.numel() - 1):
        t, s = as_time(ts[i], x), as_time(ts[i + 1], x)
        (a_t, s_t), (a_s, s_s) = process.marginal(t), process.marginal(s)
        x0_hat = x0_from_score(x, score_fn(x, t), a_t, s_t)
        eps_hat = (x - expand_like(a_t, x) * x0_hat) / expand_like(s_t, x)
        sigma = eta * s_s * (1 - (a_t * s_s / (a_s * s_t)) ** 2).clamp_min(0).sqrt()
        z = noise_like(x, generator) if eta > 0 else torch.zeros_like(x)
        x = ddim_step(x, x0_hat, eps_hat, a_s, s_s, sigma, z)
        if callback is not None:
            callback(i, ts[i + 1], x)
    return x
