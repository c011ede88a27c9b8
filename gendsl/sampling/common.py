"""Shared pieces of every sampler: the signature, the final step onto clean data, and small
named helpers for the math."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import NamedTuple, Protocol

import torch
from torch import Tensor

from gendsl.processes import (
    Process,
    ScoreFn,
    as_time,
    expand_like,
    score_from_x0,
    x0_from_score,
)

__all__ = [
    "FINAL_STEPS",
    "Callback",
    "Point",
    "Sampler",
    "ab2_final",
    "checked_times",
    "clipped_score",
    "denoise",
    "extrapolated_final",
    "final_x0",
    "lands_on_data",
    "noise_like",
]

Callback = Callable[[int, Tensor, Tensor], None]


class Sampler(Protocol):
    """``fn(process, score_fn, x, ts, *, generator=None, callback=None, **knobs) -> x``.

    ``x`` is the prior sample at ``ts[0]``; ``ts`` is a decreasing 1-D tensor of times.  When
    ``ts[-1] == 0`` the last interval is the final denoising step (see :func:`lands_on_data`).
    ``callback(i, t, x)`` is called after every step with the new time and state.
    """

    def __call__(
        self,
        process: Process,
        score_fn: ScoreFn,
        x: Tensor,
        ts: Tensor,
        *,
        generator: torch.Generator | None = None,
        callback: Callback | None = None,
    ) -> Tensor: ...


def noise_like(x: Tensor, generator: torch.Generator | None) -> Tensor:
    """Standard normal noise with ``x``'s shape, device and dtype from ``generator``."""
    return torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)


def denoise(process: Process, score_fn: ScoreFn, x: Tensor, t: Tensor) -> Tensor:
    """Tweedie's formula x0 = E[x0 | x_t] = (x_t + s_t² ∇log p_t(x_t)) / a_t (Efron 2011,
    "Tweedie's formula and selection bias"); the step every sampler takes from t to 0."""
    t = as_time(t, x)
    a_t, s_t = process.marginal(t)
    return x0_from_score(x, score_fn(x, t), a_t, s_t)


def clipped_score(
    process: Process, score_fn: ScoreFn, low: float = 0.0, high: float = 1.0
) -> ScoreFn:
    """The score whose denoised estimate is clipped to the data's range [low, high].

    x̂0 = (x_t + s_t² ∇log p_t(x_t)) / a_t (Tweedie's formula), x̃0 = clip(x̂0, low, high) and
    ∇̃ = -(x_t - a_t x̃0) / s_t²: every sampler that reads the score then steps toward x̃0.
    Ho et al. 2020 clip x̂0 to the data's range at every step of their sampler (their code's
    ``clip_denoised``; diffusers' schedulers' ``clip_sample``): a network early in training, or
    far from its data, predicts x̂0 outside [0, 1] and the deterministic samplers carry that
    error to the end.  Where s_t = 0 the score is returned as it is.
    """

    def score(x: Tensor, t: Tensor) -> Tensor:
        raw = score_fn(x, t)
        a_t, s_t = process.marginal(as_time(t, x))
        clipped = x0_from_score(x, raw, a_t, s_t).clamp(low, high)
        return torch.where(expand_like(s_t, x) > 0, score_from_x0(x, clipped, a_t, s_t), raw)

    return score


def checked_times(sampler: Callable[..., Tensor]) -> Callable[..., Tensor]:
    """Check that ``ts`` is a strictly decreasing 1-D tensor of times >= 0 on ``x``'s device and
    dtype, and run the sampler under ``torch.no_grad``."""

    @functools.wraps(sampler)
    @torch.no_grad()
    def run(process, score_fn, x, ts, *, generator=None, callback=None, **knobs) -> Tensor:
        ts = torch.as_tensor(ts, device=x.device, dtype=x.dtype)
        if ts.ndim != 1 or ts.numel() < 2 or not bool((ts[1:] < ts[:-1]).all()):
            raise ValueError(f"ts must be a strictly decreasing 1-D tensor of times, got {ts}")
        if ts[-1] < 0:
            raise ValueError(f"ts must end at a time >= 0, got {ts[-1].item()}")
        return sampler(process, score_fn, x, ts, generator=generator, callback=callback, **knobs)

    return run


def lands_on_data(sampler: Callable[..., Tensor]) -> Callable[..., Tensor]:
    """Give a sampler the shared end-of-sampling rule, the checks of :func:`checked_times` and
    ``torch.no_grad``.

    If ``ts`` ends in 0 the sampler runs over ``ts[:-1]`` (down to the small time before 0) and
    the last step is :func:`denoise` (one more score evaluation).  The score is singular at
    t = 0 and the stochastic samplers would otherwise end with noise of size s_{t_end}: the
    posterior mean removes it.  It shrinks a mode of width τ by τ² / (τ² + σ²) in variance,
    with σ = s/a at the last time before 0, so the schedule should end at σ well below the
    data's finest scale (the default ``t_min`` of VP gives σ ≈ 0.01).
    """

    @checked_times
    @functools.wraps(sampler)
    def run(process, score_fn, x, ts, *, generator=None, callback=None, **knobs) -> Tensor:
        if ts[-1] > 0:
            return sampler(
                process, score_fn, x, ts, generator=generator, callback=callback, **knobs
            )
        if ts.numel() > 2:
            x = sampler(
                process, score_fn, x, ts[:-1], generator=generator, callback=callback, **knobs
            )
        x = denoise(process, score_fn, x, ts[-2])
        if callback is not None:
            callback(ts.numel() - 2, ts[-1], x)
        return x

    return run


FINAL_STEPS = ("tweedie", "ab2", "extrapolate")
"""Final steps from σ_e = σ(ts[-2]) to σ = 0 of the multistep samplers (see :func:`final_x0`)."""


class Point(NamedTuple):
    """A point of a sampling trajectory: time ``t`` (shape [B]), state ``x`` and the model's
    denoised estimate ``D`` ≈ E[x0 | x_t] there."""

    t: Tensor
    x: Tensor
    D: Tensor


def ab2_final(
    x_tilde: Tensor, D: Tensor, sigma: Tensor, x_tilde_p: Tensor, D_p: Tensor, sigma_p: Tensor
) -> Tensor:
    """x̃(0) by a two-step Adams–Bashforth step in σ on dx̃/dσ = d = (x̃ - D)/σ (Karras et al.
    2022, eq. 4), with d linear through (σ_p, d_p) and (σ, d) integrated exactly from σ to 0:
    x̃(0) = x̃ - σ d + ½ σ² (d - d_p)/(σ - σ_p) = D + ½ σ² (d - d_p)/(σ - σ_p).

    The Euler step x̃ - σ d is Tweedie's D; on a Gaussian mode of width τ, d ≈ c σ/τ is linear
    for σ ≪ τ, so the correction removes Tweedie's shrink σ²/(2τ²) to O(σ⁴/τ⁴)."""
    d, d_p = (x_tilde - D) / expand_like(sigma, D), (x_tilde_p - D_p) / expand_like(sigma_p, D)
    return D + expand_like(0.5 * sigma**2 / (sigma - sigma_p), D) * (d - d_p)


def extrapolated_final(D: Tensor, sigma: Tensor, D_p: Tensor, sigma_p: Tensor) -> Tensor:
    """x̃(0) = lim_{σ→0} D(x̃(σ); σ) with D linear in σ² through (σ_p², D_p) and (σ², D):
    D(0) = D + σ² (D - D_p)/(σ_p² - σ²).  Along the exact flow of a Gaussian mode N(μ, τ²),
    D - μ = C τ (1 + σ²/τ²)^{-1/2} = C τ (1 - σ²/(2τ²) + O(σ⁴/τ⁴)) (Karras et al. 2022, eq. 4;
    Efron 2011 for D = E[x0 | x_t]), so the extrapolation leaves O(σ⁴/τ⁴) of the shrink."""
    return D + expand_like(sigma**2 / (sigma_p**2 - sigma**2), D) * (D - D_p)


def final_x0(process: Process, final: str, now: Point, prev: Point | None) -> Tensor:
    """The sample at t = 0 from the last trajectory point ``now`` (at σ_e = s/a) and the one
    before it: ``"tweedie"`` is D (:func:`denoise`), ``"ab2"`` :func:`ab2_final`,
    ``"extrapolate"`` :func:`extrapolated_final`; without ``prev`` every kind is Tweedie's.
    Assumes a(0) = 1, as :func:`denoise` does."""
    if final not in FINAL_STEPS:
        raise ValueError(f"final must be one of {', '.join(FINAL_STEPS)}, got {final!r}")
    if final == "tweedie" or prev is None:
        return now.D
    (a, s), (a_p, s_p) = process.marginal(now.t), process.marginal(prev.t)
    if final == "ab2":
        x_tilde, x_tilde_p = now.x / expand_like(a, now.x), prev.x / expand_like(a_p, prev.x)
        return ab2_final(x_tilde, now.D, s / a, x_tilde_p, prev.D, s_p / a_p)
    return extrapolated_final(now.D, s / a, prev.D, s_p / a_p)
