"""Learned priors of a multi-scale flow, written as bijections onto the declared base.

Glow (Kingma & Dhariwal 2018, Sec. 3; ``split2d_prior`` and ``learntop`` in their code) and
RealNVP (Dinh et al. 2017, Sec. 3.6) give each factored-out half a *learned conditional prior*
z₂ ~ N(μ(z₁), σ(z₁)²), with (μ, log σ) from a zero-initialised 3x3 convolution of the kept half
z₁, and the top of the flow a learned N(μ, σ²).  A Gaussian density is the standard normal's
after standardising (change of variables):

log N(z; μ, σ) = log N(ε; 0, 1) - Σ log σ,   ε = (z - μ) ⊙ exp(-log σ),

so these layers map z to ε with log|det ∂ε/∂z| = -Σ log σ and the flow keeps its declared base
``z ~ Normal(0, 1)``: the log-likelihood is exactly Glow's, and sampling x = T⁻¹(ε), ε ~ N(0, 1),
draws every factored half z₂ = μ(z₁) + σ(z₁) ⊙ ε top-down from its conditional.  With another
base the prior is that base's location-scale family.  Everything starts at zero, so at
initialisation the model is the fixed-prior one exactly.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from gendsl.lower.flow_layers import Transform

__all__ = ["LearnedTop", "SplitPrior", "ZeroConv2d", "standardize", "unstandardize"]


def standardize(z: Tensor, mean: Tensor, log_scale: Tensor) -> tuple[Tensor, Tensor]:
    """ε = (z - μ) ⊙ exp(-log σ) and log|det ∂ε/∂z| = -Σ log σ per sample, so that
    log N(z; μ, σ) = log N(ε; 0, 1) + log|det ∂ε/∂z| (Glow's ``get_eps`` and ``logp``)."""
    eps = (z - mean) * torch.exp(-log_scale)
    return eps, -log_scale.expand_as(z).reshape(z.shape[0], -1).sum(1)


def unstandardize(eps: Tensor, mean: Tensor, log_scale: Tensor) -> Tensor:
    """z = μ + exp(log σ) ⊙ ε, the inverse of :func:`standardize` (Glow's ``sample2``)."""
    return mean + torch.exp(log_scale) * eps


class ZeroConv2d(nn.Module):
    """Glow's ``conv2d_zeros``: a k×k convolution, weight and bias zero, its output scaled by
    exp(3 logs) per channel (``logscale_factor`` 3, logs zero).  The input is padded with ones
    rather than zeros, so the border is visible to the convolution (Glow's edge bias)."""

    logscale_factor = 3.0

    def __init__(self, in_channels: int, out_channels: int, kernel: int = 3):
        super().__init__()
        # Built from zeros, not nn.Conv2d: no draw from the global generator, so every other
        # layer initialises exactly as in the fixed-prior model.
        self.weight = nn.Parameter(torch.zeros(out_channels, in_channels, kernel, kernel))
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.logs = nn.Parameter(torch.zeros(out_channels))
        self.pad = kernel // 2

    def forward(self, x: Tensor) -> Tensor:
        h = F.conv2d(F.pad(x, [self.pad] * 4, value=1.0), self.weight, self.bias)
        return h * torch.exp(self.logscale_factor * self.logs).reshape(-1, 1, 1)


class SplitPrior(nn.Module):
    """The learned conditional prior of a :class:`~gendsl.lower.flow_layers.Split`:
    (μ, log σ) of the factored-out x₂ [C₂, H, W] from a :class:`ZeroConv2d` of the kept
    x₁ [C₁, H, W] with 2 C₂ outputs (Glow's ``split2d_prior``)."""

    def __init__(self, kept: int, factored: int):
        super().__init__()
        self.factored = factored
        self.conv = ZeroConv2d(kept, 2 * factored)

    def mean_and_log_scale(self, x1: Tensor) -> tuple[Tensor, Tensor]:
        """(μ(x₁), log σ(x₁)), each [B, C₂, H, W]."""
        h = self.conv(x1)
        return h[:, : self.factored], h[:, self.factored :]

    def standardize(self, x1: Tensor, x2: Tensor) -> tuple[Tensor, Tensor]:
        """(ε₂, log|det ∂ε₂/∂x₂|) of x₂ given x₁ (:func:`standardize`)."""
        return standardize(x2, *self.mean_and_log_scale(x1))

    def unstandardize(self, x1: Tensor, eps2: Tensor) -> Tensor:
        """x₂ = μ(x₁) + σ(x₁) ⊙ ε₂."""
        return unstandardize(eps2, *self.mean_and_log_scale(x1))


class LearnedTop(Transform):
    """``learntop``: the top of the flow z ~ N(μ, σ²) with μ and log σ learned per channel and
    position, both starting at zero (Glow's ``learntop``, whose zero convolution of a zero input
    is a learned bias); as a layer ε = (z - μ) ⊙ exp(-log σ), log|det| = -Σ log σ."""

    def __init__(self, shape: Sequence[int]):
        super().__init__(shape)
        self.mean = nn.Parameter(torch.zeros(self.shape))
        self.log_scale = nn.Parameter(torch.zeros(self.shape))

    def call_and_ladj(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return standardize(x, self.mean, self.log_scale)

    def inverse(self, y: Tensor) -> Tensor:
        return unstandardize(y, self.mean, self.log_scale)

    def log_abs_det_jacobian(self, x: Tensor, y: Tensor) -> Tensor:
        return (-self.log_scale.sum()).expand(x.shape[0])
