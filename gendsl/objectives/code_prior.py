"""The prior over a VQ-VAE's grid of codes: uniform (what the autoencoder is trained with) or
a learned PixelCNN (van den Oord et al. 2017, Sec. 3.2 and 4.1), chosen by
``loss vq(prior = uniform | pixelcnn(channels = 64, layers = 5, after = 0))``.

The PixelCNN is fitted by maximum likelihood to the encoder's codes with a stop-gradient: its
loss −log p(c(x)) trains the prior only, never the encoder or the codebook, so the
autoencoder's training is the same with or without it.  From step ``after`` on (0: from the
start) it is trained alongside the autoencoder on the codes of each batch; the paper fits it
once the autoencoder is trained, which ``after`` close to ``steps`` reproduces.

A prior may be conditioned on another level's codes (``cond``): VQ-VAE-2's bottom PixelCNN
sees the top codes (Razavi et al. 2019, sec. 3.3); the uniform prior ignores them.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

from gendsl.ir import Opt
from gendsl.nn.pixelcnn import PixelCNN

__all__ = ["CodePrior", "code_prior"]


class CodePrior(nn.Module):
    """A prior over code grids ``[B, *grid]`` of ``K`` codes: uniform when ``net`` is ``None``,
    else the PixelCNN ``net``, trained from step ``after``."""

    def __init__(self, K: int, grid: tuple[int, ...], net: PixelCNN | None, after: int = 0):
        super().__init__()
        self.K, self.grid, self.net, self.after = K, tuple(grid), net, after

    def log_prob(self, index: Tensor, cond: Tensor | None = None) -> Tensor:
        """log p(c[ | cond]) per grid ``[B]``: −(positions)·log K under the uniform prior."""
        if self.net is None:
            positions = math.prod(index.shape[1:])
            return torch.full(index.shape[:1], -positions * math.log(self.K), device=index.device)
        return self.net.log_prob(index, cond)

    def loss(
        self, index: Tensor, step: Tensor | int, cond: Tensor | None = None
    ) -> Tensor | float:
        """−log p(sg[c][ | sg[cond]]) per grid ``[B]`` from step ``after`` on (0 before, and
        for the uniform prior, which has nothing to fit)."""
        if self.net is None or int(step) < self.after:
            return 0.0
        return -self.net.log_prob(index.detach(), None if cond is None else cond.detach())

    def sample(
        self,
        n: int,
        *,
        generator: torch.Generator | None,
        device: Any,
        cond: Tensor | None = None,
    ) -> Tensor:
        """``n`` code grids ``[n, *grid]``: uniform draws, or the PixelCNN's exact ancestral
        samples (one network pass per position), given the codes ``cond`` if conditional."""
        if self.net is None:
            return torch.randint(0, self.K, (n, *self.grid), generator=generator, device=device)
        return self.net.sample(n, self.grid, generator=generator, cond=cond)

    def describe(self) -> str:
        """One line for ``gendsl compile``."""
        if self.net is None:
            return f"prior: uniform over {self.K} codes"
        given = "" if self.net.cond_embed is None else ", given the previous level's codes"
        return (
            f"prior: PixelCNN over the {'x'.join(map(str, self.grid))} grid{given}, "
            f"trained on sg[codes] from step {self.after}"
        )


def code_prior(
    option: Opt | str | None, K: int, grid: tuple[int, ...], *, cond_K: int | None = None
) -> CodePrior:
    """The :class:`CodePrior` of the ``prior`` option of ``loss vq`` (a PixelCNN conditioned on
    a grid of ``cond_K`` codes when ``cond_K`` is given).

    :raises ValueError: an unknown prior, or a PixelCNN over codes that are not a 2-D grid.
    """
    name = option.name if isinstance(option, Opt) else (option or "uniform")
    if name == "uniform":
        return CodePrior(K, grid, None)
    if name != "pixelcnn":
        raise ValueError(f"prior must be uniform or pixelcnn(...), got {name!r}")
    if len(grid) != 2:
        raise ValueError(
            "prior = pixelcnn needs a 2-D grid of codes (a ConvNet encoder of an image), "
            f"got codes of grid shape {tuple(grid)}"
        )
    kw = option.kwargs if isinstance(option, Opt) else {}
    net = PixelCNN(
        K,
        channels=int(kw.get("channels", 64)),
        layers=int(kw.get("layers", 5)),
        cond_K=cond_K,
    )
    return CodePrior(K, grid, net, int(kw.get("after", 0)))
