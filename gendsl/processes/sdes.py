"""The three score SDEs of Song et al. 2021 ("Score-Based Generative Modeling through Stochastic
Differential Equations", ICLR, appendix B) with closed-form kernels, log-SNR and its inverse."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from gendsl.processes.base import Process

__all__ = ["VESDE", "VPSDE", "SubVPSDE"]


def _positive(name: str, value: float) -> float:
    if not value > 0:
        raise ValueError(f"{name} must be > 0, got {value}")
    return float(value)


class _LinearBeta(Process):
    """Shared schedule of VP and sub-VP: β(t) = β_min + t (β_max - β_min) on [0, 1]."""

    T = 1.0

    def __init__(self, beta_min: float = 0.1, beta_max: float = 20.0, t_min: float = 1e-3):
        self.beta_min = _positive("beta_min", beta_min)
        self.beta_max = _positive("beta_max", beta_max)
        if beta_max < beta_min:
            raise ValueError(f"beta_max must be >= beta_min = {beta_min}, got {beta_max}")
        if not 0 < t_min < 1:
            raise ValueError(f"t_min must be in (0, 1), got {t_min}")
        self.t_min = float(t_min)

    def beta(self, t: Tensor) -> Tensor:
        """β(t) = β_min + t (β_max - β_min)."""
        return self.beta_min + t * (self.beta_max - self.beta_min)

    def B(self, t: Tensor) -> Tensor:
        """B(t) = ∫₀ᵗ β(u) du = β_min t + ½ t² (β_max - β_min)."""
        return self.beta_min * t + 0.5 * t**2 * (self.beta_max - self.beta_min)

    def t_from_B(self, B: Tensor) -> Tensor:
        """The root t ≥ 0 of ½ Δ t² + β_min t = B with Δ = β_max - β_min (rationalised form)."""
        delta = self.beta_max - self.beta_min
        return 2 * B / (self.beta_min + torch.sqrt(self.beta_min**2 + 2 * delta * B))

    def f(self, t: Tensor) -> Tensor:
        """f(t) = -β(t)/2."""
        return -0.5 * self.beta(t)

    def __repr__(self) -> str:
        name = type(self).__name__
        return f"{name}(beta_min={self.beta_min}, beta_max={self.beta_max}, t_min={self.t_min})"


class VPSDE(_LinearBeta):
    """Variance-preserving SDE dx = -½ β(t) x dt + √β(t) dw (Song et al. 2021, eq. 11)."""

    def g(self, t: Tensor) -> Tensor:
        """g(t) = √β(t)."""
        return torch.sqrt(self.beta(t))

    def marginal(self, t: Tensor) -> tuple[Tensor, Tensor]:
        """a_t = exp(-B/2), s_t = √(1 - exp(-B)) (Song et al. 2021, eq. 29)."""
        B = self.B(t)
        return torch.exp(-0.5 * B), torch.sqrt(-torch.expm1(-B))

    def log_snr(self, t: Tensor) -> Tensor:
        """λ(t) = -log(exp(B(t)) - 1)."""
        return -torch.log(torch.expm1(self.B(t)))

    def t_from_log_snr(self, lam: Tensor) -> Tensor:
        """B = log(1 + e^{-λ}), then t from the quadratic B(t) = B."""
        return self.t_from_B(torch.nn.functional.softplus(-lam))


class SubVPSDE(_LinearBeta):
    """Sub-VP SDE dx = -½ β x dt + √(β (1 - e^{-2B(t)})) dw (Song et al. 2021, eq. 12)."""

    def g(self, t: Tensor) -> Tensor:
        """g(t) = √(β(t) (1 - exp(-2 B(t))))."""
        return torch.sqrt(-self.beta(t) * torch.expm1(-2 * self.B(t)))

    def marginal(self, t: Tensor) -> tuple[Tensor, Tensor]:
        """a_t = exp(-B/2), s_t = 1 - exp(-B) (Song et al. 2021, eq. 30)."""
        B = self.B(t)
        return torch.exp(-0.5 * B), -torch.expm1(-B)

    def log_snr(self, t: Tensor) -> Tensor:
        """λ(t) = -B - 2 log(1 - e^{-B})."""
        B = self.B(t)
        return -B - 2 * torch.log(-torch.expm1(-B))

    def t_from_log_snr(self, lam: Tensor) -> Tensor:
        """With y = e^{-B} and d = e^{-λ}: y (1 - y)^{-2} = 1/d, whose root in (0, 1) is
        y = 2 / (2 + d + √(d (4 + d))), so B = log1p((d + √(d (4 + d))) / 2)."""
        d = torch.exp(-lam)
        return self.t_from_B(torch.log1p(0.5 * (d + torch.sqrt(d * (4 + d)))))


class VESDE(Process):
    """Variance-exploding SDE dx = √(d σ²(t)/dt) dw with σ(t) = σ_min (σ_max/σ_min)^t
    (Song et al. 2021, eq. 9 and appendix B).

    The kernel variance is the exact σ(t)² - σ_min² of the SDE started at t = 0 (eq. 29), so
    s_0 = 0 as for the other processes.
    """

    T = 1.0

    def __init__(self, sigma_min: float = 0.01, sigma_max: float = 50.0, t_min: float = 1e-5):
        self.sigma_min = _positive("sigma_min", sigma_min)
        self.sigma_max = _positive("sigma_max", sigma_max)
        if not sigma_max > sigma_min:
            raise ValueError(f"sigma_max must be > sigma_min = {sigma_min}, got {sigma_max}")
        if not 0 < t_min < 1:
            raise ValueError(f"t_min must be in (0, 1), got {t_min}")
        self.t_min = float(t_min)
        self.log_ratio = math.log(self.sigma_max / self.sigma_min)

    def sigma(self, t: Tensor) -> Tensor:
        """σ(t) = σ_min (σ_max/σ_min)^t."""
        return self.sigma_min * torch.exp(t * self.log_ratio)

    def f(self, t: Tensor) -> Tensor:
        """f(t) = 0."""
        return torch.zeros_like(t)

    def g(self, t: Tensor) -> Tensor:
        """g(t) = σ(t) √(2 log(σ_max/σ_min))."""
        return self.sigma(t) * math.sqrt(2 * self.log_ratio)

    def marginal(self, t: Tensor) -> tuple[Tensor, Tensor]:
        """a_t = 1, s_t = σ_min √(exp(2 t log(σ_max/σ_min)) - 1)."""
        s_t = self.sigma_min * torch.sqrt(torch.expm1(2 * t * self.log_ratio))
        return torch.ones_like(t), s_t

    def log_snr(self, t: Tensor) -> Tensor:
        """λ(t) = -log s_t²."""
        return -2 * math.log(self.sigma_min) - torch.log(torch.expm1(2 * t * self.log_ratio))

    def t_from_log_snr(self, lam: Tensor) -> Tensor:
        """t = log1p(e^{-λ}/σ_min²) / (2 log(σ_max/σ_min))."""
        return torch.log1p(torch.exp(-lam) / self.sigma_min**2) / (2 * self.log_ratio)

    def __repr__(self) -> str:
        return f"VESDE(sigma_min={self.sigma_min}, sigma_max={self.sigma_max}, t_min={self.t_min})"
