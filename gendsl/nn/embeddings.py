"""Time and label embeddings.

A continuous time ``t`` enters a network either as itself (``concat``), as random Fourier
features (Tancik et al. 2020, "Fourier Features Let Networks Learn High Frequency Functions";
the Gaussian Fourier projection of Song et al. 2021, "Score-Based Generative Modeling through
Stochastic Differential Equations") or as the sinusoidal position code of Vaswani et al. 2017
("Attention Is All You Need"), as used for diffusion time by Ho et al. 2020.  A class label
enters through a learned table with one extra "null" row for classifier-free guidance (Ho &
Salimans 2022): index ``num_classes`` means "no label".
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

__all__ = [
    "TIME_EMBEDDINGS",
    "ConcatTime",
    "FourierEmbedding",
    "LabelEmbedding",
    "SinusoidalEmbedding",
    "as_time_batch",
    "gaussian_fourier_features",
    "sinusoidal_embedding",
    "time_embedding",
]

TIME_EMBEDDINGS = ("concat", "fourier", "sinusoidal")


def as_time_batch(t: Tensor | float, batch: int, like: Tensor) -> Tensor:
    """Turn a scalar, ``[B]`` or ``[B, 1]`` time into a ``[B]`` tensor on ``like``'s device."""
    t = torch.as_tensor(t, device=like.device, dtype=like.dtype)
    if t.dim() == 0:
        return t.expand(batch)
    t = t.reshape(t.shape[0], -1)
    if t.shape[1] != 1 or t.shape[0] != batch:
        raise ValueError(f"time must be a scalar or have shape [{batch}], got {tuple(t.shape)}")
    return t[:, 0]


def gaussian_fourier_features(t: Tensor, W: Tensor) -> Tensor:
    """γ(t) = [sin(2π t W), cos(2π t W)] for fixed frequencies W ~ N(0, s²).

    Tancik et al. 2020, eq. (5); Song et al. 2021, appendix C (Gaussian Fourier projection).
    ``t`` has shape [B], ``W`` shape [m]; the result has shape [B, 2m].
    """
    angle = 2 * math.pi * t[:, None] * W[None, :]
    return torch.cat([torch.sin(angle), torch.cos(angle)], dim=1)


def sinusoidal_embedding(t: Tensor, dim: int, *, max_period: float = 10000.0) -> Tensor:
    """PE(t)_i = sin(t ω_i), PE(t)_{i+d/2} = cos(t ω_i), ω_i = max_period^(-i/(d/2)).

    Vaswani et al. 2017, section 3.5, with ``t`` in place of the position; ``dim`` must be even.
    ``t`` has shape [B]; the result has shape [B, dim].
    """
    half = dim // 2
    i = torch.arange(half, device=t.device, dtype=t.dtype)
    omega = torch.exp(-math.log(max_period) * i / half)
    angle = t[:, None] * omega[None, :]
    return torch.cat([torch.sin(angle), torch.cos(angle)], dim=1)


class ConcatTime(nn.Module):
    """``t`` itself as one extra feature (the FFJORD / CFM convention)."""

    dim = 1

    def forward(self, t: Tensor) -> Tensor:
        return t[:, None]


class FourierEmbedding(nn.Module):
    """Gaussian Fourier projection of ``t`` with fixed random frequencies (a buffer).

    ``scale`` is the standard deviation s of the frequencies; 16 follows the NCSN++ setting of
    Song et al. 2021.
    """

    def __init__(self, dim: int, *, scale: float = 16.0):
        super().__init__()
        if dim < 2 or dim % 2:
            raise ValueError(f"fourier time embedding size must be even and >= 2, got {dim}")
        if scale <= 0:
            raise ValueError(f"fourier scale must be > 0, got {scale}")
        self.dim = dim
        self.register_buffer("W", torch.randn(dim // 2) * scale)

    def forward(self, t: Tensor) -> Tensor:
        return gaussian_fourier_features(t, self.W.to(t.dtype))


class SinusoidalEmbedding(nn.Module):
    """Sinusoidal code of ``scale * t``.

    With ``t`` in [0, 1], ``scale = 1000`` matches the discrete step index of DDPM (Ho et al.
    2020) as Song et al. 2021 do for their continuous-time DDPM++ models.
    """

    def __init__(self, dim: int, *, scale: float = 1000.0, max_period: float = 10000.0):
        super().__init__()
        if dim < 2 or dim % 2:
            raise ValueError(f"sinusoidal time embedding size must be even and >= 2, got {dim}")
        self.dim = dim
        self.scale = scale
        self.max_period = max_period

    def forward(self, t: Tensor) -> Tensor:
        return sinusoidal_embedding(self.scale * t, self.dim, max_period=self.max_period)


def time_embedding(kind: str, dim: int, *, scale: float | None = None) -> nn.Module:
    """Build the time embedding named ``kind`` (one of :data:`TIME_EMBEDDINGS`)."""
    if kind == "concat":
        return ConcatTime()
    if kind == "fourier":
        return FourierEmbedding(dim) if scale is None else FourierEmbedding(dim, scale=scale)
    if kind == "sinusoidal":
        return SinusoidalEmbedding(dim) if scale is None else SinusoidalEmbedding(dim, scale=scale)
    raise ValueError(f"time embedding must be one of {', '.join(TIME_EMBEDDINGS)}, got {kind!r}")


class LabelEmbedding(nn.Module):
    """A learned vector per class plus a null class at index ``num_classes``.

    ``forward(None)`` (no label) returns the null embedding, which classifier-free guidance
    trains by dropping labels (Ho & Salimans 2022).
    """

    def __init__(self, num_classes: int, dim: int):
        super().__init__()
        if num_classes < 1:
            raise ValueError(f"number of classes must be >= 1, got {num_classes}")
        if dim < 1:
            raise ValueError(f"label embedding size must be >= 1, got {dim}")
        self.num_classes = num_classes
        self.dim = dim
        self.table = nn.Embedding(num_classes + 1, dim)

    @property
    def null_index(self) -> int:
        """The index that means "no label"."""
        return self.num_classes

    def forward(self, y: Tensor | None, batch: int | None = None) -> Tensor:
        if y is None:
            if batch is None:
                raise ValueError("a null label needs the batch size")
            y = torch.full((batch,), self.null_index, device=self.table.weight.device)
        y = y.long().reshape(-1)
        if (
            _checks_on_host(y)
            and y.numel()
            and (int(y.min()) < 0 or int(y.max()) > self.num_classes)
        ):
            raise ValueError(
                f"labels must lie in 0..{self.num_classes} ({self.num_classes} = null), "
                f"got values in {int(y.min())}..{int(y.max())}"
            )
        return self.table(y)


def _checks_on_host(y: Tensor) -> bool:
    """Whether a value check of ``y`` may read it back: only for CPU tensors outside
    ``torch.compile`` — on a GPU the read would stall every step (the labels were checked
    against their declaration when the data were loaded), and under compile it would break the
    graph."""
    return y.device.type == "cpu" and not torch.compiler.is_compiling()
