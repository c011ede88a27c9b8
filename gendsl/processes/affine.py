"""A general affine SDE dx = f(t) x dt + g(t) dw from user callables (the symbolic core hands
these over from a declared ``sde``)."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from gendsl.processes.base import Process

__all__ = ["AffineSDE", "integrate_kernel"]

Coefficient = Callable[[Tensor], Tensor]


def _cumulative_trapezoid(y: Tensor, x: Tensor) -> Tensor:
    """∫_{x_0}^{x_i} y dx for every grid point i by the trapezoid rule (0 at i = 0)."""
    steps = 0.5 * (y[1:] + y[:-1]) * (x[1:] - x[:-1])
    return torch.cat([torch.zeros_like(y[:1]), torch.cumsum(steps, 0)])


def integrate_kernel(f: Coefficient, g: Coefficient, grid: Tensor) -> tuple[Tensor, Tensor]:
    """log a(t) = ∫₀ᵗ f(u) du and s(t)² = a(t)² ∫₀ᵗ g(u)² / a(u)² du on ``grid`` (from 0).

    These are the mean scale and variance of the linear SDE's kernel (Särkkä & Solin 2019,
    "Applied Stochastic Differential Equations", eqs. 6.2-6.3, scalar case).
    """
    log_a = _cumulative_trapezoid(f(grid), grid)
    var_over_a2 = _cumulative_trapezoid(g(grid) ** 2 * torch.exp(-2 * log_a), grid)
    return log_a, torch.exp(2 * log_a) * var_over_a2


def _interp(t: Tensor, grid: Tensor, values: Tensor) -> Tensor:
    """Piecewise-linear interpolation of ``values`` on a uniform ``grid``, clamped to its ends."""
    n = grid.numel() - 1
    u = ((t.to(grid) - grid[0]) / (grid[-1] - grid[0]) * n).clamp(0, n)
    i = u.floor().long().clamp(max=n - 1)
    w = u - i
    return values[i] * (1 - w) + values[i + 1] * w


class AffineSDE(Process):
    """dx = f(t) x dt + g(t) dw on [0, T] from vectorised callables of ``t``.

    ``a`` and ``s`` (the kernel's scale and std) may be given in closed form; otherwise they are
    integrated once on a uniform grid of ``grid_size`` points (:func:`integrate_kernel`) and
    interpolated linearly (``log a`` and ``s²``).
    """

    def __init__(
        self,
        f: Coefficient,
        g: Coefficient,
        a: Coefficient | None = None,
        s: Coefficient | None = None,
        *,
        t_min: float,
        T: float = 1.0,
        grid_size: int = 4001,
    ):
        if not T > 0:
            raise ValueError(f"T must be > 0, got {T}")
        if not 0 < t_min < T:
            raise ValueError(f"t_min must be in (0, T = {T}), got {t_min}")
        if (a is None) != (s is None):
            raise ValueError("give both a and s in closed form, or neither")
        self._f, self._g, self._a, self._s = f, g, a, s
        self.t_min, self.T = float(t_min), float(T)
        if a is None:
            self._grid = torch.linspace(0.0, self.T, grid_size, dtype=torch.float64)
            self._log_a, self._var = integrate_kernel(f, g, self._grid)

    def f(self, t: Tensor) -> Tensor:
        """The user's f(t), broadcast to the shape of ``t``."""
        return torch.as_tensor(self._f(t)).to(t).expand_as(t)

    def g(self, t: Tensor) -> Tensor:
        """The user's g(t), broadcast to the shape of ``t``."""
        return torch.as_tensor(self._g(t)).to(t).expand_as(t)

    def marginal(self, t: Tensor) -> tuple[Tensor, Tensor]:
        """(a_t, s_t): the closed forms if given, else interpolated from the integrated kernel."""
        if self._a is not None:
            a_t = torch.as_tensor(self._a(t)).to(t).expand_as(t)
            return a_t, torch.as_tensor(self._s(t)).to(t).expand_as(t)
        grid = self._grid.to(t.device)
        log_a = _interp(t, grid, self._log_a.to(t.device))
        var = _interp(t, grid, self._var.to(t.device))
        return torch.exp(log_a).to(t), torch.sqrt(var.clamp(min=0)).to(t)
