"""Continuous normalising flows: the ``cnf(...)`` layer of a ``flow { }`` block.

A network v(x, t) defines dx/dt = v(x(t), t) on t ∈ [0, 1], with x(0) on the base side and
x(1) on the data side.  Along a solution the instantaneous change of variables gives
d log p(x(t))/dt = -∇·v(x(t), t) (Chen et al. 2018, "Neural Ordinary Differential Equations",
Thm. 1), so the data-to-base map T(x) = x(0) given x(1) = x has

log|det ∂T/∂x| = -∫₀¹ ∇·v(x(t), t) dt,

integrated backwards in time together with x by a torchdiffeq solver.  The divergence is exact
(one backward pass per dimension) or Hutchinson's unbiased estimate εᵀ(∂v/∂x)ε with one
Rademacher ε per sample held fixed over a solve (Grathwohl et al. 2019, "FFJORD", Sec. 2.2).
The estimate is used in training mode and wherever the model's loss runs (``estimate``: the
held-out loss then costs what a training step's does, where the exact trace of a 28×28 image
would take 784 backward passes per function evaluation); ``log_prob`` in eval mode uses the
exact divergence and gives exact log-likelihoods.  Gradients flow through the solver's steps
(no adjoint).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn
from torchdiffeq import odeint

from gendsl.lower.flow_layers import Transform
from gendsl.objectives.divergence import flow_with_divergence, rademacher
from gendsl.objectives.eager import eager

__all__ = ["CNF", "FIXED_STEPS"]

#: Steps over [0, 1] of the fixed-grid solvers (euler, midpoint, heun, rk4).
FIXED_STEPS = 20
_ADAPTIVE = ("dopri5", "dopri8", "bosh3", "adaptive_heun", "fehlberg2")
_TORCHDIFFEQ_NAMES = {"heun": "heun2"}


class CNF(Transform):
    """The continuous flow of ``net``: T maps x(1) = x to x(0) (see the module docstring).

    :param net: v(x, t), called as ``net(x, t=t)``; output of the data shape.
    :param trace: ``exact`` or ``hutchinson`` (in training mode or while ``estimate`` is set;
        otherwise exact).
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
        #: Use the Hutchinson estimate outside training mode too (set around the loss).
        self.estimate = False

    def _grid(self, t0: float, t1: float, like: Tensor) -> tuple[Tensor, dict[str, float]]:
        """The times [t0, t1] and the solver options (a step size for fixed-grid solvers)."""
        ts = torch.tensor([t0, t1], device=like.device, dtype=like.dtype)
        return ts, {} if self.solver in _ADAPTIVE else {"step_size": abs(t1 - t0) / FIXED_STEPS}

    def velocity(self, x: Tensor, t: Tensor) -> Tensor:
        """v(x, t) with t (the solver's scalar, or one per sample) broadcast over the batch."""
        self.nfe += 1
        return self.net(x, t=t.expand(x.shape[0]))

    @eager  # differentiated twice: eager under torch.compile
    def call_and_ladj(self, x: Tensor) -> tuple[Tensor, Tensor]:
        estimating = self.training or self.estimate
        eps = rademacher(x) if estimating and self.trace == "hutchinson" else None
        ts, opts = self._grid(1.0, 0.0, x)
        self.nfe = 0
        return flow_with_divergence(
            self.velocity,
            x,
            ts,
            probe=eps,
            create_graph=torch.is_grad_enabled(),
            method=self.solver,
            rtol=self.rtol,
            atol=self.atol,
            options=opts,
        )

    def inverse(self, y: Tensor) -> Tensor:
        ts, opts = self._grid(0.0, 1.0, y)
        self.nfe = 0

        def rhs(t: Tensor, x: Tensor) -> Tensor:
            return self.velocity(x, t)

        return odeint(
            rhs, y, ts, method=self.solver, rtol=self.rtol, atol=self.atol, options=opts
        )[-1]

    def log_abs_det_jacobian(self, x: Tensor, y: Tensor) -> Tensor:
        """-∫₀¹ ∇·v dt along the solution through x (solves again)."""
        return self.call_and_ladj(x)[1]
