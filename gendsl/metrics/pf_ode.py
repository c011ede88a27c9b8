"""Exact log-likelihood through the probability-flow ODE, and bits per dimension for images.

The probability-flow ODE dx/dt = v(x, t) = f(t) x - ½ g(t)² ∇log p_t(x) (Song et al. 2021,
"Score-Based Generative Modeling through SDEs", eq. 13) moves samples of p_{t_min} to p_T; along
its solution the instantaneous change of variables d log p_t(x(t))/dt = -∇·v(x(t), t) (Chen et al.
2018, "Neural Ordinary Differential Equations", Thm. 1) gives

log p_{t_min}(x) = log p_T(x(T)) + ∫_{t_min}^T ∇·v(x(t), t) dt   (Song et al. 2021, eq. 40),

with p_T replaced by the process prior N(0, s_T² I).  The divergence is exact (D backward passes)
or Hutchinson's estimate εᵀ(∂v/∂x)ε with one Rademacher ε per sample held fixed over the solve
(Grathwohl et al. 2019, "FFJORD", Sec. 2.2), unbiased for the log-likelihood.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from gendsl.errors import DataError, UsageError
from gendsl.objectives.divergence import flow_with_divergence, probe_for
from gendsl.processes import Process, expand_like

__all__ = [
    "bits_per_dim",
    "dequantize",
    "dequantized_log_prob",
    "pf_ode_flow",
    "pf_ode_log_prob",
    "pf_ode_velocity",
]

ScoreFn = Callable[[Tensor, Tensor], Tensor]


def pf_ode_velocity(process: Process, score_fn: ScoreFn, x: Tensor, t: Tensor) -> Tensor:
    """v(x, t) = f(t) x - ½ g(t)² ∇log p_t(x) (Song et al. 2021, eq. 13); ``t`` of shape [B]."""
    return process.drift(x, t) - 0.5 * expand_like(process.g(t) ** 2, x) * score_fn(x, t)


@torch.no_grad()
def pf_ode_flow(
    process: Process,
    score_fn: ScoreFn,
    x: Tensor,
    *,
    trace: str = "exact",
    method: str = "dopri5",
    rtol: float = 1e-5,
    atol: float = 1e-5,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, Tensor]:
    """Integrate the PF-ODE from t_min to T with the divergence accumulator.

    Returns ``(x_T, delta)`` with x_T the image of ``x`` [B, ...] at time T and
    delta = ∫_{t_min}^T ∇·v dt [B], so log p_{t_min}(x) = log p_T(x_T) + delta.
    """
    ts = torch.tensor([process.t_min, process.T], device=x.device, dtype=x.dtype)
    return flow_with_divergence(
        lambda y, t: pf_ode_velocity(process, score_fn, y, t),
        x,
        ts,
        probe=probe_for(trace, x, generator=generator),
        method=method,
        rtol=rtol,
        atol=atol,
    )


def pf_ode_log_prob(
    process: Process,
    score_fn: ScoreFn,
    x: Tensor,
    *,
    trace: str = "exact",
    method: str = "dopri5",
    rtol: float = 1e-5,
    atol: float = 1e-5,
    generator: torch.Generator | None = None,
) -> Tensor:
    """log p(x) in nats per sample: prior_log_prob(x_T) + ∫ ∇·v dt (Song et al. 2021, eq. 40),
    with x taken as a sample of p_{t_min}; see :func:`pf_ode_flow` for the knobs."""
    x_T, delta = pf_ode_flow(
        process,
        score_fn,
        x,
        trace=trace,
        method=method,
        rtol=rtol,
        atol=atol,
        generator=generator,
    )
    return process.prior_log_prob(x_T) + delta


def bits_per_dim(log_prob: Tensor, dims: int) -> Tensor:
    """-log p / (D ln 2): nats per sample to bits per dimension."""
    return -log_prob / (dims * math.log(2.0))


def dequantize(
    x: Tensor, *, levels: int = 256, generator: torch.Generator | None = None
) -> Tensor:
    """Uniform dequantisation y = (k + u)/levels, u ~ U[0, 1)^D, of data x = k/(levels - 1) in
    [0, 1] (Theis et al. 2016, "A note on the evaluation of generative models", Sec. 3.1);
    y lies in [k/levels, (k + 1)/levels)."""
    if levels < 2:
        raise UsageError(f"levels must be >= 2, got {levels}")
    lo, hi = x.min().item(), x.max().item()
    if lo < 0 or hi > 1:
        raise DataError(f"dequantize expects data in [0, 1], got values in [{lo}, {hi}]")
    k = torch.round(x * (levels - 1))
    return (k + torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype)) / levels


def dequantized_log_prob(
    log_prob_z: Tensor, dims: int, *, levels: int = 256, scale: float = 1.0
) -> Tensor:
    """Lower bound on the discrete log-probability of the quantised data, in nats per sample.

    The model density is over z = scale · y + shift, with y from :func:`dequantize`, so
    log p_y(y) = log p_z(z) + D log|scale|; each bin has volume levels^{-D}, and by Jensen
    log P(k) ≥ E_u[log p_y(y)] - D log levels (Theis et al. 2016, eq. 8).
    """
    return log_prob_z + dims * math.log(abs(scale)) - dims * math.log(levels)
