"""The instantaneous change of variables: divergence estimators and the ODE log-likelihood that
continuous normalising flows (:mod:`gendsl.lower.cnf`), flow-matching models
(:func:`gendsl.lower.matching.flow_log_prob`) and the probability-flow ODE
(:mod:`gendsl.metrics.pf_ode`) share.

Along a solution of dx/dt = v(x, t) the density changes as d log p_t(x(t))/dt = -∇·v(x(t), t)
(Chen et al. 2018, "Neural Ordinary Differential Equations", Thm. 1), so integrating x together
with ∇·v from t_a to t_b gives

log p_{t_a}(x(t_a)) = log p_{t_b}(x(t_b)) + ∫_{t_a}^{t_b} ∇·v(x(t), t) dt.

The divergence is exact (one backward pass per dimension) or Hutchinson's unbiased estimate
εᵀ(∂v/∂x)ε with one Rademacher ε per sample held fixed over a solve (Grathwohl et al. 2019,
"FFJORD", Sec. 2.2).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import Tensor

from gendsl.errors import UsageError
from gendsl.objectives import draws

__all__ = [
    "EXACT_TRACE_MAX_DIM",
    "TRACES",
    "check_trace",
    "default_trace",
    "divergence",
    "divergence_exact",
    "divergence_hutchinson",
    "flow_with_divergence",
    "ode_log_prob",
    "probe_for",
    "rademacher",
]

#: The divergence estimators: ``exact`` and ``hutchinson``.
TRACES = ("exact", "hutchinson")

#: Largest data dimension for which a likelihood uses the exact trace by default (D backward
#: passes per function evaluation); above it Hutchinson's estimate (one).
EXACT_TRACE_MAX_DIM = 16

#: v(x, t) with x and the result of shape [B, ...] and t of shape [B].
Field = Callable[[Tensor, Tensor], Tensor]


def check_trace(trace: str) -> str:
    """``trace`` if it names an estimator of :data:`TRACES`, else a :class:`UsageError`."""
    if trace not in TRACES:
        raise UsageError(f"trace must be one of {', '.join(TRACES)}; got {trace!r}")
    return trace


def default_trace(dims: int) -> str:
    """``exact`` for data of at most :data:`EXACT_TRACE_MAX_DIM` dimensions, else
    ``hutchinson``."""
    return "exact" if dims <= EXACT_TRACE_MAX_DIM else "hutchinson"


def divergence_exact(v: Tensor, x: Tensor, *, create_graph: bool = False) -> Tensor:
    """∇·v = Σ_i ∂v_i/∂x_i per sample, one backward pass per coordinate.

    ``v`` and ``x`` are [B, ...] with row b of ``v`` a function of row b of ``x`` only (no
    cross-sample coupling such as batch norm).
    """
    v_flat = v.reshape(v.shape[0], -1)
    diag = [
        torch.autograd.grad(v_flat[:, i].sum(), x, create_graph=create_graph, retain_graph=True)[
            0
        ].reshape(x.shape[0], -1)[:, i]
        for i in range(v_flat.shape[1])
    ]
    return torch.stack(diag, 1).sum(1)


def divergence_hutchinson(
    v: Tensor, x: Tensor, eps: Tensor, *, create_graph: bool = False
) -> Tensor:
    """Hutchinson's estimate εᵀ(∂v/∂x)ε of ∇·v per sample, unbiased when E[ε εᵀ] = I
    (Hutchinson 1989; Grathwohl et al. 2019, eq. 7); ``eps``, ``v`` and ``x`` of one shape."""
    (jv,) = torch.autograd.grad((v * eps).sum(), x, create_graph=create_graph)
    return (jv * eps).reshape(x.shape[0], -1).sum(1)


def divergence(v: Tensor, x: Tensor, probe: Tensor | None, *, create_graph: bool) -> Tensor:
    """∇·v exactly when ``probe`` is ``None``, else Hutchinson's estimate with ``probe``."""
    if probe is None:
        return divergence_exact(v, x, create_graph=create_graph)
    return divergence_hutchinson(v, x, probe, create_graph=create_graph)


def rademacher(like: Tensor, *, generator: torch.Generator | None = None) -> Tensor:
    """ε with independent ±1 entries of ``like``'s shape, device and dtype."""
    bits = draws.randint(0, 2, like.shape, generator=generator, device=like.device)
    return 2.0 * bits.to(like.dtype) - 1.0


def probe_for(
    trace: str, like: Tensor, *, generator: torch.Generator | None = None
) -> Tensor | None:
    """The probe of the estimator ``trace``: ``None`` for ``exact``, a :func:`rademacher` ε for
    ``hutchinson``."""
    return rademacher(like, generator=generator) if check_trace(trace) == "hutchinson" else None


def flow_with_divergence(
    v_fn: Field,
    x: Tensor,
    ts: Tensor,
    *,
    probe: Tensor | None = None,
    create_graph: bool = False,
    method: str = "dopri5",
    rtol: float = 1e-5,
    atol: float = 1e-5,
    options: Mapping[str, Any] | None = None,
) -> tuple[Tensor, Tensor]:
    """Solve dx/dt = v(x, t) over the times ``ts`` from x(ts[0]) = ``x`` together with the
    divergence: returns ``(x(ts[-1]), ∫_{ts[0]}^{ts[-1]} ∇·v(x(t), t) dt)`` per sample.

    With ``create_graph`` the result is differentiable (through the solver's steps, no
    adjoint); without it nothing of the solve keeps a graph.  ``probe``: see :func:`divergence`.
    """

    from torchdiffeq import odeint  # imported on first solve: it loads scipy (about a second)

    def dynamics(t: Tensor, state: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
        y = state[0]
        with torch.enable_grad():
            if not (create_graph and y.requires_grad):
                y = y.detach().requires_grad_(True)
            v = v_fn(y, t.expand(y.shape[0]))
            div = divergence(v, y, probe, create_graph=create_graph)
        return (v, div) if create_graph else (v.detach(), div.detach())

    zero = torch.zeros(x.shape[0], device=x.device, dtype=x.dtype)
    opts = dict(options or {})
    xs, acc = odeint(dynamics, (x, zero), ts, method=method, rtol=rtol, atol=atol, options=opts)
    return xs[-1], acc[-1]


def ode_log_prob(
    v_fn: Field,
    x: Tensor,
    ts: Tensor,
    log_p_end: Callable[[Tensor], Tensor],
    *,
    trace: str = "exact",
    method: str = "dopri5",
    rtol: float = 1e-5,
    atol: float = 1e-5,
    options: Mapping[str, Any] | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """log p_{ts[0]}(x) = log p_{ts[-1]}(x(ts[-1])) + ∫_{ts[0]}^{ts[-1]} ∇·v dt per sample
    (Chen et al. 2018, Thm. 1; Grathwohl et al. 2019, eq. 4), with ``log_p_end`` the log-density
    at the far end; ``trace`` is ``exact`` or ``hutchinson`` (one Rademacher probe per sample,
    drawn from ``generator`` and fixed over the solve)."""
    probe = probe_for(trace, x, generator=generator)
    with torch.no_grad():
        x_end, delta = flow_with_divergence(
            v_fn, x, ts, probe=probe, method=method, rtol=rtol, atol=atol, options=options
        )
    return log_p_end(x_end) + delta
