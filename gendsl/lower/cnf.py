"""Continuous normalising flows: the ``cnf(...)`` layer of a ``flow { }`` block.

A network v(x, t) defines dx/dt = v(x(t), t) on t ∈ [0, 1], with x(0) on the base side and
x(1) on the data side.  Along a solution the instantaneous change of variables gives
d log p(x(t))/dt = -∇·v(x(t), t) (Chen et al. 2018, "Neural Ordinary Differential Equations",
Thm. 1), so the data-to-base map T(x) = x(0) given x(1) = x has

log|det ∂T/∂x| = -∫₀¹ ∇·v(x(t), t) dt,

integrated backwards in time together with x by a torchdiffeq solver.  The divergence is exact
(one backward pass per dimension) or Hutchinson's unbiased estimate εᵀ(∂v/∂x)ε with one
Rademacher ε per sample held fixed over a solve (Grathwohl et al. 2019, "FFJORD", Sec. 2.2).
The estimate is used only in training mode; in eval mode the exact divergence gives exact
log-likelihoods.  Gradients flow through the solver's steps (no adjoint).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn
from torchdiffeq import odeint

from gendsl.lower.flow_layers import Transform
from gendsl.objectives import draws
from gendsl.objectives.eager import eager

__all__ = ["CNF", "FIXED_STEPS", "divergence_exact", "divergence_hutchinson", "rademacher"]

#: Steps over [0, 1] of the fixed-grid solvers (euler, midpoint, heun, rk4).
FIXED_STEPS = 20
_ADAPTIVE = ("dopri5", "dopri8", "bosh3", "adaptive_heun", "fehlberg2")
_TORCHDIFFEQ_NAMES = {"heun": "heun2"}


def divergence_exact(v: Tensor, x: Tensor, *, create_graph: bool) -> Tensor:
    """∇·v = Σ_i ∂v_i/∂x_i per sample, one backward pass per coordinate; ``v`` and ``x`` are
    [B, ...] with row b of ``v`` a function of row b of ``x`` only."""
    v_flat = v.reshape(v.shape[0], -1)
    diag = [
        torch.autograd.grad(v_flat[:, i].sum(), x, create_graph=create_graph, retain_graph=True)[
            0
        ].reshape(x.shape[0], -1)[:, i]
        for i in range(v_flat.shape[1])
    ]
    return torch.stack(diag, 1).sum(1)


def divergence_hutchinson(v: Tensor, x: Tensor, eps: Tensor, *, create_graph: bool) -> Tensor:
    """Hutchinson's estimate εᵀ(∂v/∂x)ε of ∇·v per sample, unbiased when E[ε εᵀ] = I
    (Hutchinson 1989; Grathwohl et al. 2019, eq. 7)."""
    (jv,) = torch.autograd.grad((v * eps).sum(), x, create_graph=create_graph)
    return (jv * eps).reshape(x.shape[0], -1).sum(1)


def rademacher(like: Tensor, *, generator: torch.Generator | None = None) -> Tensor:
    """ε with independent ±1 entries of ``like``'s shape, device and dtype."""
    bits = draws.randint(0, 2, like.shape, generator=generator, device=like.device)
    return 2.0 * bits.to(like.dtype) - 1.0


class CNF(Transform):
    """The continuous flow of ``net``: T maps x(1) = x to x(0) (see the module docstring).

    :param net: v(x, t), called as ``net(x, t=t)``; output of the data shape.
    :param trace: ``exact`` or ``hutchinson`` (training only; eval mode is always exact).
    :param solver: a torchdiffeq method; fixed-grid ones take :data:`FIXED_STEPS` steps.
    """

    def __init__(
        self,
        shape: Sequence[int],
        net: nn.Module,
        *,
        trace: str,
        solver: str,
        rtol: float,
        atol: float,
    ):
        super().__init__(shape)
        self.net = net
        self.trace, self.rtol, self.atol = trace, float(rtol), float(atol)
        self.solver = _TORCHDIFFEQ_NAMES.get(solver, solver)
        self.nfe = 0

    def _solve(self, dynamics, state, t0: float, t1: float, like: Tensor):
        ts = torch.tensor([t0, t1], device=like.device, dtype=like.dtype)
        opts = {} if self.solver in _ADAPTIVE else {"step_size": abs(t1 - t0) / FIXED_STEPS}
        self.nfe = 0
        out = odeint(
            dynamics,
            state,
            ts,
            method=self.solver,
            rtol=self.rtol,
            atol=self.atol,
            options=opts,
        )
        return tuple(o[-1] for o in out) if isinstance(out, tuple) else out[-1]

    def velocity(self, x: Tensor, t: Tensor) -> Tensor:
        """v(x, t) with the solver's scalar t broadcast over the batch."""
        self.nfe += 1
        return self.net(x, t=t.expand(x.shape[0]))

    @eager  # differentiated twice: eager under torch.compile
    def call_and_ladj(self, x: Tensor) -> tuple[Tensor, Tensor]:
        graph = torch.is_grad_enabled()
        eps = rademacher(x) if self.training and self.trace == "hutchinson" else None

        def dynamics(t: Tensor, state: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
            y = state[0]
            with torch.enable_grad():
                if not y.requires_grad:
                    y = y.detach().requires_grad_(True)
                v = self.velocity(y, t)
                if eps is None:
                    div = divergence_exact(v, y, create_graph=graph)
                else:
                    div = divergence_hutchinson(v, y, eps, create_graph=graph)
            if not graph:
                v, div = v.detach(), div.detach()
            return v, div

        zero = torch.zeros(x.shape[0], device=x.device, dtype=x.dtype)
        z, ladj = self._solve(dynamics, (x, zero), 1.0, 0.0, x)
        return z, ladj

    def inverse(self, y: Tensor) -> Tensor:
        return self._solve(lambda t, x: self.velocity(x, t), y, 0.0, 1.0, y)

    def log_abs_det_jacobian(self, x: Tensor, y: Tensor) -> Tensor:
        """-∫₀¹ ∇·v dt along the solution through x (solves again)."""
        return self.call_and_ladj(x)[1]
