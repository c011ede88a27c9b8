"""The sampler of the matching family: dx/dt = v(x, t) integrated with torchdiffeq (Chen et al.
2018, "Neural Ordinary Differential Equations") from a source draw at t = 0 to t = 1."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor
from torchdiffeq import odeint

from gendsl import sampler_registry
from gendsl.errors import UsageError

__all__ = ["DEFAULT_STEPS", "SOLVERS", "check_solver", "integrate", "solver_grid"]

VelocityFn = Callable[[Tensor, Tensor], Tensor]

#: The registry's ODE solver names -> torchdiffeq method names.
SOLVERS = {
    "dopri5": "dopri5",
    "euler": "euler",
    "heun": "heun2",
    "rk4": "rk4",
    "midpoint": "midpoint",
}

#: Steps of a fixed-step solver when neither the spec nor the caller gives ``steps``.
DEFAULT_STEPS: int = sampler_registry.declared("matching", "ode").default_steps or 100


def check_solver(solver: str) -> None:
    """Refuse a solver name the registry does not declare."""
    if solver not in SOLVERS:
        raise UsageError(f"unknown ODE method {solver!r}; expected one of {', '.join(SOLVERS)}")


def solver_grid(t0: float, t1: float, solver: str, steps: int | None, like: Tensor) -> Tensor:
    """The times torchdiffeq reports at: both ends for dopri5, ``steps`` equal steps else."""
    n = 1 if solver == "dopri5" else (DEFAULT_STEPS if steps is None else steps)
    if n < 1:
        raise UsageError(f"steps must be >= 1, got {n}")
    return torch.linspace(t0, t1, n + 1, device=like.device, dtype=like.dtype)


@torch.no_grad()
def integrate(
    v_fn: VelocityFn,
    x: Tensor,
    *,
    t0: float = 0.0,
    t1: float = 1.0,
    solver: str = "dopri5",
    steps: int | None = None,
    rtol: float = 1e-5,
    atol: float = 1e-5,
) -> Tensor:
    """x(t1) for dx/dt = v(x, t), x(t0) = ``x`` (Chen et al. 2018): adaptive dopri5 (``rtol``,
    ``atol``) or ``steps`` fixed steps of euler, heun, midpoint (2nd order) or rk4."""
    check_solver(solver)
    B = x.shape[0]

    def rhs(t: Tensor, state: Tensor) -> Tensor:
        return v_fn(state, t.expand(B))

    ts = solver_grid(t0, t1, solver, steps, x)
    return odeint(rhs, x, ts, method=SOLVERS[solver], rtol=rtol, atol=atol)[-1]
