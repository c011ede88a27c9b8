"""Shared helpers of the flow tests."""

from __future__ import annotations

import torch

import gendsl.lower as L

__all__ = ["perturbed_flow"]


def perturbed_flow(spec: str, shape: tuple[int, ...], *, scale: float = 0.3):
    """The flow of ``spec`` in float64 and eval mode, actnorm initialised on a batch of
    ``shape`` images and every parameter (zero-initialised heads included) moved by
    ``scale`` N(0, 1), so that no layer is the identity (seeded)."""
    torch.manual_seed(0)
    model = L.load(spec).double()
    model.loss(torch.rand(16, *shape, dtype=torch.float64))  # actnorm's data-dependent init
    with torch.no_grad():
        for p in model.parameters():
            p.add_(scale * torch.randn_like(p))
    return model.eval()
