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
from torchdiffeq import odeint

from gendsl.errors import DataError, UsageError
from gendsl.processes import Process, expand_like

__all__ = [
    "bits_per_dim",
    "dequantize",
    "dequantized_log_prob",
    "divergence_exact",
    "divergence_hutchinson",
    "pf_ode_flow",
    "pf_ode_log_prob",
    "pf_ode_velocity",
]

ScoreFn = Callable[[Tensor, Tensor], Tensor]
TRACES = ("exact", "hutchinson")


def pf_ode_velocity(process: Process, score_fn: ScoreFn, x: Tensor, t: Tensor) -> Tensor:
    """v(x, t) = f(t) x - ½ g(t)² ∇log p_t(x) (Song et al. 2021, eq. 13); ``t`` of shape [B]."""
    return process.drift(x, t) - 0.5 * expand_like(process.g(t) ** 2, x) * score_fn(x, t)


def divergence_exact(v: Tensor, x: Tensor) -> Tensor:
    """∇·v = Σ_i ∂v_i/∂x_i per sample, one backward pass per coordinate.

    ``v`` and ``x`` are [B, D] with ``x`` a leaf requiring grad and row b of ``v`` a function of
    row b of ``x`` only (no cross-sample coupling such as batch norm).
    """
    diag = [
        torch.autograd.grad(v[:, i].sum(), x, retain_graph=True)[0][:, i]
        for i in range(x.shape[1])
    ]
    return torch.stack(diag, dim=1).sum(dim=1)


def divergence_hutchinson(v: Tensor, x: Tensor, eps: Tensor) -> Tensor:
    """Hutchinson's estimate εᵀ (∂v/∂x) ε of ∇·v per sample, E[ε εᵀ] = I
    (Hutchinson 1989; Grathwohl et al. 2019, eq. 7); shapes as in :func:`divergence_exact`."""
    (jv,) = torch.autograd.grad((v * eps).sum(), x)
    return (jv * eps).sum(dim=1)


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
    if trace not in TRACES:
        raise UsageError(f"trace must be one of {', '.join(TRACES)}; got {trace!r}")
    shape, B = x.shape, x.shape[0]
    eps = None
    if trace == "hutchinson":
        bits = torch.randint(0, 2, (B, x[0].numel()), generator=generator, device=x.device)
        eps = 2.0 * bits.to(x.dtype) - 1.0

    def dynamics(t: Tensor, state: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
        with torch.enable_grad():
            y = state[0].detach().requires_grad_(True)
            v = pf_ode_velocity(process, score_fn, y.reshape(shape), t.expand(B)).reshape(B, -1)
            div = divergence_exact(v, y) if eps is None else divergence_hutchinson(v, y, eps)
        return v.detach(), div.detach()

    ts = torch.tensor([process.t_min, process.T], device=x.device, dtype=x.dtype)
    state0 = (x.reshape(B, -1), torch.zeros(B, device=x.device, dtype=x.dtype))
    y_T, delta = odeint(dynamics, state0, ts, method=method, rtol=rtol, atol=atol)
    return y_T[-1].reshape(shape), delta[-1]


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
