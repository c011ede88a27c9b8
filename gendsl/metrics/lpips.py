"""LPIPS (Zhang et al. 2018, "The Unreasonable Effectiveness of Deep Features as a Perceptual
Metric"), AlexNet variant v0.1, ported from the lpips package (``lpips/pretrained_networks.py`` and
``lpips/lpips.py``, BSD-2-Clause) with the same parameter names, so the state dict of
``lpips.LPIPS(net="alex")`` (AlexNet ``features`` plus the ``lin0``–``lin4`` layers) loads as is.

``d(x, y) = Σ_l mean_hw ‖w_l ⊙ (f̂_l(x) − f̂_l(y))‖²`` over the five ReLU outputs ``f_l`` of
AlexNet, each normalised to unit length over its channels (``f̂``), weighted by the learned
``w_l ≥ 0``. Images in [0, 1] are scaled to [-1, 1] (the package's ``normalize=True``), grey
images repeated over three channels, and images under 64 pixels resized to 64×64 (bilinear) —
AlexNet's pooling needs at least that, and LPIPS was trained on 64×64 patches.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["LPIPS", "mean_pair_distance"]

_CHANNELS = (64, 192, 384, 256, 256)
_MIN_SIZE = 64
_EPS = 1e-10


class _ScalingLayer(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("shift", torch.tensor([-0.030, -0.088, -0.188])[None, :, None, None])
        self.register_buffer("scale", torch.tensor([0.458, 0.448, 0.450])[None, :, None, None])

    def forward(self, x: Tensor) -> Tensor:
        return (x - self.shift) / self.scale


class _AlexNetSlices(nn.Module):
    """torchvision's ``alexnet().features`` cut after each ReLU (module indices kept)."""

    def __init__(self) -> None:
        super().__init__()
        layers = [
            nn.Conv2d(3, 64, 11, stride=4, padding=2),
            nn.ReLU(),
            nn.MaxPool2d(3, stride=2),
            nn.Conv2d(64, 192, 5, padding=2),
            nn.ReLU(),
            nn.MaxPool2d(3, stride=2),
            nn.Conv2d(192, 384, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(384, 256, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(256, 256, 3, padding=1),
            nn.ReLU(),
        ]
        for k, (start, stop) in enumerate(((0, 2), (2, 5), (5, 8), (8, 10), (10, 12)), 1):
            part = nn.Sequential()
            for i in range(start, stop):
                part.add_module(str(i), layers[i])
            setattr(self, f"slice{k}", part)

    def forward(self, x: Tensor) -> list[Tensor]:
        out = []
        for k in range(1, 6):
            x = getattr(self, f"slice{k}")(x)
            out.append(x)
        return out


class _NetLinLayer(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.model = nn.Sequential(nn.Dropout(), nn.Conv2d(channels, 1, 1, bias=False))

    def forward(self, x: Tensor) -> Tensor:
        return self.model(x)


def _unit_channels(f: Tensor) -> Tensor:
    """``f / ‖f‖`` over the channel axis (lpips' ``normalize_tensor``)."""
    return f / (f.square().sum(dim=1, keepdim=True).sqrt() + _EPS)


class LPIPS(nn.Module):
    """``forward(x, y)`` → the LPIPS distance ``[n]`` between images ``[n, C, H, W]`` in [0, 1]."""

    def __init__(self) -> None:
        super().__init__()
        self.scaling_layer = _ScalingLayer()
        self.net = _AlexNetSlices()
        for k, c in enumerate(_CHANNELS):
            setattr(self, f"lin{k}", _NetLinLayer(c))

    def _prepare(self, x: Tensor) -> Tensor:
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        if min(x.shape[-2:]) < _MIN_SIZE:
            x = F.interpolate(x, size=(_MIN_SIZE, _MIN_SIZE), mode="bilinear", align_corners=False)
        return self.scaling_layer(2.0 * x - 1.0)

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        fx, fy = self.net(self._prepare(x)), self.net(self._prepare(y))
        terms = [
            getattr(self, f"lin{k}")((_unit_channels(a) - _unit_channels(b)).square()).mean(
                dim=(1, 2, 3)
            )
            for k, (a, b) in enumerate(zip(fx, fy, strict=True))
        ]
        return torch.stack(terms).sum(dim=0)


@torch.no_grad()
def mean_pair_distance(model: nn.Module, x: Tensor, *, batch: int = 50) -> float:
    """Mean LPIPS between the disjoint pairs ``(x[2i], x[2i+1])`` (a sample set's diversity)."""
    device = next(model.parameters()).device
    pairs = len(x) // 2
    if pairs < 1:
        raise ValueError(f"LPIPS diversity needs at least 2 samples, got {len(x)}")
    first, second = x[0 : 2 * pairs : 2], x[1 : 2 * pairs : 2]
    distances = [
        model(first[i : i + batch].to(device), second[i : i + batch].to(device)).cpu()
        for i in range(0, pairs, batch)
    ]
    return float(torch.cat(distances).mean())
