"""Shared pieces of every sampler: the signature, the final step onto clean data, and small
named helpers for the math."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Protocol

import torch
from torch import Tensor

from gendsl.processes import Process, ScoreFn, as_time, x0_from_score

__all__ = [
    "Callback",
    "Sampler",
    "denoise",
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


def lands_on_data(sampler: Callable[..., Tensor]) -> Callable[..., Tensor]:
    """Give a sampler the shared end-of-sampling rule and ``torch.no_grad``.

    If ``ts`` ends in 0 the sampler runs over ``ts[:-1]`` (down to the small time before 0) and
    the last step is :func:`denoise` (one more score evaluation).  The score is singular at
    t = 0 and the stochastic samplers would otherwise end with noise of size s_{t_end}: the
    posterior mean removes it.  It shrinks a mode of width τ by τ² / (τ² + σ²) in variance,
    with σ = s/a at the last time before 0, so the schedule should end at σ well below the
    data's finest scale (the default ``t_min`` of VP gives σ ≈ 0.01).
    """

    @functools.wraps(sampler)
    @torch.no_grad()
    def run(process, score_fn, x, ts, *, generator=None, callback=None, **knobs) -> Tensor:
        ts = torch.as_tensor(ts, device=x.device, dtype=x.dtype)
        if ts.ndim != 1 or ts.numel() < 2 or not bool((ts[1:] < ts[:-1]).all()):
            raise ValueError(f"ts must be a strictly decreasing 1-D tensor of times, got {ts}")
        if ts[-1] < 0:
            raise ValueError(f"ts must end at a time >= 0, got {ts[-1].item()}")
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
