"""The affine Gaussian forward process and its torchsde views.

A process is ``dx = f(t) x dt + g(t) dw`` on ``[0, T]``; its perturbation kernel is Gaussian,
``x_t | x0 ~ N(a(t) x0, s(t)^2 I)`` (Song et al. 2021, "Score-Based Generative Modeling through
Stochastic Differential Equations", eq. 5.50 of Särkkä & Solin 2019 for the moments).  Subclasses
give ``marginal`` (the pair ``a_t, s_t``) and the coefficients ``f``, ``g``; everything else here
(log-SNR, prior, reverse SDE, probability-flow ODE) is derived from those hooks.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence

import torch
from torch import Tensor

__all__ = [
    "ForwardSDE",
    "Process",
    "ReverseSDE",
    "ScoreFn",
    "as_time",
    "expand_like",
]

ScoreFn = Callable[[Tensor, Tensor], Tensor]


def expand_like(v: Tensor, x: Tensor) -> Tensor:
    """Reshape a per-sample value ``v`` of shape ``[B]`` to ``[B, 1, ..., 1]`` so it broadcasts
    against ``x`` of shape ``[B, ...]``; a 0-d tensor, or one already of ``x.ndim`` dims, is
    returned unchanged."""
    if v.ndim == 0 or v.ndim == x.ndim:
        return v
    return v.reshape(v.shape[0], *([1] * (x.ndim - 1)))


def as_time(t: Tensor | float, x: Tensor) -> Tensor:
    """A time as a tensor on ``x``'s device and dtype with one entry per sample, shape ``[B]``."""
    t = torch.as_tensor(t, device=x.device, dtype=x.dtype)
    return t.expand(x.shape[0]) if t.ndim == 0 else t


class Process(ABC):
    """Affine Gaussian forward process: dx = f(t) x dt + g(t) dw, so
    x_t | x0 ~ N(a(t) x0, s(t)² I).

    ``t_min`` is the smallest time used for training and sampling and ``T`` the end time.
    """

    t_min: float
    T: float

    @abstractmethod
    def marginal(self, t: Tensor) -> tuple[Tensor, Tensor]:
        """The kernel's scale and standard deviation ``(a_t, s_t)``, each shaped like ``t``."""

    @abstractmethod
    def f(self, t: Tensor) -> Tensor:
        """The drift coefficient: the drift is ``f(t) * x``."""

    @abstractmethod
    def g(self, t: Tensor) -> Tensor:
        """The diffusion coefficient ``g(t)``."""

    def drift(self, x: Tensor, t: Tensor) -> Tensor:
        """The forward drift ``f(t) x`` with ``t`` a scalar or shape ``[B]``."""
        return expand_like(self.f(t), x) * x

    def log_snr(self, t: Tensor) -> Tensor:
        """λ(t) = log(a_t² / s_t²) (Kingma et al. 2021, "Variational Diffusion Models", eq. 2)."""
        a_t, s_t = self.marginal(t)
        return 2.0 * (torch.log(a_t) - torch.log(s_t))

    def t_from_log_snr(self, lam: Tensor) -> Tensor:
        """The inverse of :meth:`log_snr` by bisection on ``[0, T]`` (λ decreases in t).

        Values outside the range of λ land on the nearer end of ``[0, T]``.
        """
        lam64 = lam.to(torch.float64)
        lo = torch.zeros_like(lam64)
        hi = torch.full_like(lam64, self.T)
        for _ in range(60):
            mid = 0.5 * (lo + hi)
            above = self.log_snr(mid) > lam64
            lo = torch.where(above, mid, lo)
            hi = torch.where(above, hi, mid)
        return (0.5 * (lo + hi)).to(lam.dtype)

    def prior_std(self, *, device: torch.device | None = None, dtype=None) -> Tensor:
        """s_T, the standard deviation of the prior N(0, s_T² I) at the end time."""
        t_end = torch.tensor(self.T, device=device, dtype=dtype or torch.get_default_dtype())
        return self.marginal(t_end)[1]

    def prior_sample(
        self,
        shape: Sequence[int],
        *,
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> Tensor:
        """A draw from the prior N(0, s_T² I) (the mean a_T x0 is taken to be negligible)."""
        z = torch.randn(tuple(shape), generator=generator, device=device, dtype=dtype)
        return self.prior_std(device=z.device, dtype=z.dtype) * z

    def prior_log_prob(self, x: Tensor) -> Tensor:
        """Per-sample log N(x; 0, s_T² I), summed over every non-batch dimension."""
        s_T = self.prior_std(device=x.device, dtype=x.dtype)
        d = x[0].numel()
        sq = x.reshape(x.shape[0], -1).pow(2).sum(dim=1)
        return -0.5 * sq / s_T**2 - d * torch.log(s_T) - 0.5 * d * math.log(2 * math.pi)

    def reverse_drift(
        self, x: Tensor, t: Tensor, score: Tensor, *, probability_flow: bool
    ) -> Tensor:
        """The reverse-time drift f(t) x - c g(t)² ∇log p_t(x), with c = 1 for the reverse SDE
        (Anderson 1982; Song et al. 2021 eq. 6) and c = 1/2 for the probability-flow ODE
        (Song et al. 2021 eq. 13)."""
        c = 0.5 if probability_flow else 1.0
        return self.drift(x, t) - c * expand_like(self.g(t) ** 2, x) * score

    def reverse_sde(
        self,
        score_fn: ScoreFn,
        *,
        probability_flow: bool = False,
        event_shape: Sequence[int] | None = None,
    ) -> ReverseSDE:
        """The reverse-time SDE (or PF-ODE) as a torchsde object in solver time r = -t.

        ``torchsde.sdeint(sde, y, sde.solver_times(ts))`` with ``ts`` decreasing integrates it;
        ``y`` is flattened to ``[B, D]`` and reshaped to ``[B, *event_shape]`` for ``score_fn``.
        """
        return ReverseSDE(self, score_fn, probability_flow, event_shape)

    def forward_sde(self) -> ForwardSDE:
        """The forward SDE as a torchsde object on flattened ``y [B, D]`` in time ``t``."""
        return ForwardSDE(self)


class ForwardSDE(torch.nn.Module):
    """torchsde view of dx = f(t) x dt + g(t) dw (diagonal noise, Itô)."""

    noise_type = "diagonal"
    sde_type = "ito"

    def __init__(self, process: Process):
        super().__init__()
        self.process = process

    def f(self, t: Tensor, y: Tensor) -> Tensor:
        """Drift f(t) y."""
        return self.process.f(t.to(y)) * y

    def g(self, t: Tensor, y: Tensor) -> Tensor:
        """Diagonal diffusion g(t), one entry per coordinate."""
        return self.process.g(t.to(y)).expand_as(y)


class ReverseSDE(torch.nn.Module):
    """torchsde view of the reverse-time SDE in solver time r = -t (so r increases as t falls):
    dy = -[f(t) y - c g(t)² ∇log p_t(y)] dr + g(t) dw_r with c = 1, or c = 1/2 and no noise for
    the probability-flow ODE (Song et al. 2021, eqs. 6 and 13)."""

    noise_type = "diagonal"
    sde_type = "ito"

    def __init__(
        self,
        process: Process,
        score_fn: ScoreFn,
        probability_flow: bool,
        event_shape: Sequence[int] | None,
    ):
        super().__init__()
        self.process = process
        self.score_fn = score_fn
        self.probability_flow = probability_flow
        self.event_shape = None if event_shape is None else tuple(event_shape)

    @staticmethod
    def solver_times(ts: Tensor) -> Tensor:
        """Map process times (decreasing) to solver times r = -t (increasing)."""
        return -ts

    def f(self, r: Tensor, y: Tensor) -> Tensor:
        """Drift in solver time: -(f(t) y - c g(t)² score) at t = -r."""
        t = as_time(-r, y)
        x = y if self.event_shape is None else y.reshape(y.shape[0], *self.event_shape)
        score = self.score_fn(x, t).reshape_as(y)
        return -self.process.reverse_drift(y, t, score, probability_flow=self.probability_flow)

    def g(self, r: Tensor, y: Tensor) -> Tensor:
        """Diagonal diffusion g(t) at t = -r, or zero for the probability-flow ODE."""
        g_t = self.process.g(-r.to(y)).expand_as(y)
        return torch.zeros_like(y) if self.probability_flow else g_t
