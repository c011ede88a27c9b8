"""The discrete DDPM forward chain (Ho et al. 2020, "Denoising Diffusion Probabilistic Models")
seen as an affine process in continuous time t = k/K."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from gendsl.processes.base import Process

__all__ = ["DiscreteChain", "alphas_cumprod"]


def alphas_cumprod(betas: Tensor) -> Tensor:
    """ᾱ_k = ∏_{i ≤ k} (1 - β_i) (Ho et al. 2020, eq. 4)."""
    return torch.cumprod(1 - betas, dim=0)


class DiscreteChain(Process):
    """x_k | x_{k-1} ~ N(√(1-β_k) x_{k-1}, β_k I), k = 1..K, at times t = k/K.

    Between steps ``log ᾱ`` is interpolated linearly in t.  That is exactly the VP SDE with a
    piecewise-constant rate β(t) = -K log(1 - β_k) on ((k-1)/K, k/K], so ``f = -β(t)/2`` and
    ``g = √β(t)`` make the continuous view consistent with the chain at every step.
    """

    T = 1.0

    def __init__(self, betas: Tensor | Sequence[float], *, t_min: float | None = None):
        betas = torch.as_tensor(betas, dtype=torch.float64)
        if betas.ndim != 1 or betas.numel() == 0:
            raise ValueError(
                f"betas must be a non-empty 1-D sequence, got shape {tuple(betas.shape)}"
            )
        bad = betas[(betas <= 0) | (betas >= 1)]
        if bad.numel():
            raise ValueError(f"betas must lie in (0, 1), got {bad[0].item()}")
        self.betas = betas
        self.K = betas.numel()
        self.alphas_cumprod = alphas_cumprod(betas)
        self._cast: dict[tuple[torch.device, torch.dtype], Tensor] = {}
        self._log_abar = torch.cat([betas.new_zeros(1), torch.log(self.alphas_cumprod)])
        self.t_min = 1.0 / self.K if t_min is None else float(t_min)

    @classmethod
    def linear(cls, K: int = 1000, beta_1: float = 1e-4, beta_K: float = 0.02) -> DiscreteChain:
        """The linear schedule of Ho et al. 2020 (β from 1e-4 to 0.02 over K = 1000 steps)."""
        return cls(torch.linspace(beta_1, beta_K, K, dtype=torch.float64))

    def alphas_cumprod_like(self, like: Tensor) -> Tensor:
        """ᾱ_1..ᾱ_K on ``like``'s device and in its dtype, converted once per device and dtype
        (a training step reads it every time)."""
        key = (like.device, like.dtype)
        cast = self._cast.get(key)
        if cast is None:
            cast = self._cast[key] = self.alphas_cumprod.to(device=like.device, dtype=like.dtype)
        return cast

    def step_index(self, t: Tensor) -> Tensor:
        """The chain step k = round(t K) nearest to time t (an integer tensor)."""
        return torch.round(t * self.K).long().clamp(0, self.K)

    def _segment(self, t: Tensor) -> Tensor:
        """The index k of the step whose interval ((k-1)/K, k/K] holds t (1..K)."""
        return torch.ceil(t.to(torch.float64) * self.K).long().clamp(1, self.K)

    def log_alpha_bar(self, t: Tensor) -> Tensor:
        """log ᾱ(t), linear in t between the chain's steps."""
        u = (t.to(torch.float64) * self.K).clamp(0, self.K)
        k = u.floor().long().clamp(max=self.K - 1)
        log_abar = self._log_abar.to(t.device)
        return log_abar[k] + (u - k) * (log_abar[k + 1] - log_abar[k])

    def marginal(self, t: Tensor) -> tuple[Tensor, Tensor]:
        """a_t = √ᾱ(t), s_t = √(1 - ᾱ(t))."""
        log_abar = self.log_alpha_bar(t)
        return torch.exp(0.5 * log_abar).to(t), torch.sqrt(-torch.expm1(log_abar)).to(t)

    def beta_rate(self, t: Tensor) -> Tensor:
        """The piecewise-constant rate β(t) = -K log(1 - β_k) on ((k-1)/K, k/K]."""
        return (-self.K * torch.log1p(-self.betas.to(t.device)[self._segment(t) - 1])).to(t)

    def f(self, t: Tensor) -> Tensor:
        """f(t) = -β(t)/2 = d log a_t / dt."""
        return -0.5 * self.beta_rate(t)

    def g(self, t: Tensor) -> Tensor:
        """g(t) = √β(t), so that d s_t²/dt = 2 f s_t² + g²."""
        return torch.sqrt(self.beta_rate(t))

    def __repr__(self) -> str:
        return f"DiscreteChain(K={self.K})"
