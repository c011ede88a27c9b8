"""Toy models for the training-runtime tests (also imported by the SIGKILL subprocess)."""

from __future__ import annotations

import torch
from torch import nn

from gendsl.protocol import Capabilities

W_TRUE = torch.tensor([[1.0], [-2.0], [0.5]])
B_TRUE = 0.3
NOISE = 0.1  # the noise floor of the squared error is NOISE**2


def regression_data(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """y = x W + b + NOISE * e with x, e standard normal."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, generator=g)
    return x, x @ W_TRUE + B_TRUE + NOISE * torch.randn(n, 1, generator=g)


class Regression(nn.Module):
    """Least squares, with a jitter of the inputs drawn from the global RNG (so that resuming
    must restore it) and an optional wide hidden layer (to make checkpoints large)."""

    capabilities = Capabilities(diagnostics=True)

    def __init__(self, hidden: int = 0, jitter: float = 0.01):
        super().__init__()
        self.jitter = jitter
        self.net = (
            nn.Linear(3, 1)
            if hidden == 0
            else nn.Sequential(nn.Linear(3, hidden), nn.Linear(hidden, 1))
        )
        self.calls = 0
        self.nan_from_call: int | None = None

    def loss(self, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        self.calls += 1
        x, y = batch
        if self.training:
            x = x + self.jitter * torch.randn_like(x)
        loss = (self.net(x) - y).square().mean()
        if self.nan_from_call is not None and self.calls >= self.nan_from_call:
            return loss * float("nan")
        return loss

    def diagnostics(self, batch: tuple[torch.Tensor, torch.Tensor]) -> dict[str, float]:
        x, y = batch
        return {"mae": float((self.net(x) - y).abs().mean())}
