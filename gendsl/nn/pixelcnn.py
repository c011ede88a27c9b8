"""A PixelCNN over a grid of discrete codes: the learned prior of a VQ-VAE.

van den Oord, Kalchbrenner & Kavukcuoglu 2016, "Pixel Recurrent Neural Networks", Sec. 3.5:
convolutions whose kernels are masked so that the output at position i (raster order) sees
only the positions before it; van den Oord et al. 2017, Sec. 3.2 fit such a prior over the
VQ-VAE's code grid after training the autoencoder and sample it ancestrally.  The codes are
one categorical per position (no colour channels to order), so the masks are spatial only.

Conditioned on a second, fully known grid of codes (VQ-VAE-2's bottom prior given the top
codes, Razavi et al. 2019, sec. 3.3), an embedding of those codes, resized to the grid by
nearest neighbour, is added to every layer's input (the spatial conditioning of van den Oord
et al. 2016, "Conditional Image Generation with PixelCNN Decoders", eq. 5): it depends on no
code of the grid itself, so the masks keep the model autoregressive.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gendsl.nn.layers import activation as make_activation

__all__ = ["MaskedConv2d", "PixelCNN", "causal_mask"]


def causal_mask(kernel: int, *, centre: bool) -> Tensor:
    """The ``kernel × kernel`` mask of a masked convolution: 1 on the rows above the centre
    and left of it on its row; the centre itself only with ``centre`` (mask B; mask A
    without it, for the first layer)."""
    k = kernel // 2
    mask = torch.zeros(kernel, kernel)
    mask[:k] = 1
    mask[k, : k + int(centre)] = 1
    return mask


class MaskedConv2d(nn.Conv2d):
    """A 'same' convolution whose weights are multiplied by :func:`causal_mask`."""

    def __init__(self, c_in: int, c_out: int, kernel: int, *, centre: bool):
        if kernel < 1 or kernel % 2 == 0:
            raise ValueError(f"a masked convolution needs an odd kernel, got {kernel}")
        super().__init__(c_in, c_out, kernel, padding=kernel // 2)
        self.register_buffer("mask", causal_mask(kernel, centre=centre), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        return F.conv2d(x, self.weight * self.mask, self.bias, padding=self.padding)


class PixelCNN(nn.Module):
    """p(c) = Π_i p(c_i | c_<i) over a grid of codes c ∈ {0..K-1}^(H×W), raster order.

    An embedding of the codes, a 7×7 mask-A convolution, ``layers`` residual 3×3 mask-B
    convolutions of width ``channels``, then a 1×1 convolution to the K logits of every
    position.

    :param K: number of codes.
    :param channels: width of the hidden feature maps.
    :param layers: number of residual mask-B layers.
    :param cond_K: number of codes of a conditioning grid (``None``: unconditional).
    """

    def __init__(
        self,
        K: int,
        *,
        channels: int = 64,
        layers: int = 5,
        activation: str = "relu",
        cond_K: int | None = None,
    ):
        super().__init__()
        for name, v in (("K", K), ("channels", channels)):
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"{name} must be a positive integer, got {v!r}")
        self.K = K
        self.embed = nn.Embedding(K, channels)
        self.first = MaskedConv2d(channels, channels, 7, centre=False)
        self.blocks = nn.ModuleList(
            MaskedConv2d(channels, channels, 3, centre=True) for _ in range(layers)
        )
        self.act = make_activation(activation)
        self.out = nn.Conv2d(channels, K, 1)
        self.cond_embed = None if cond_K is None else nn.Embedding(cond_K, channels)

    def conditioning(self, cond: Tensor | None, grid: tuple[int, ...]) -> Tensor | None:
        """The embedding ``[B, channels, H, W]`` of the conditioning codes ``cond``
        ``[B, H', W']`` resized to ``grid`` by nearest neighbour (``None`` without one)."""
        if self.cond_embed is None:
            if cond is not None:
                raise ValueError("this PixelCNN takes no conditioning codes")
            return None
        if cond is None:
            raise ValueError("this PixelCNN needs the conditioning codes")
        c = self.cond_embed(cond).movedim(-1, 1)
        return F.interpolate(c, size=tuple(grid), mode="nearest")

    def logits_of(self, h: Tensor, c: Tensor | None = None) -> Tensor:
        """Logits ``[B, K, H, W]`` from embedded codes ``h`` ``[B, channels, H, W]`` and the
        conditioning ``c`` of :meth:`conditioning` (added to every layer's input)."""
        h = self.first(h if c is None else h + c)
        for block in self.blocks:
            h = h + block(self.act(h if c is None else h + c))
        return self.out(self.act(h))

    def logits(self, index: Tensor, cond: Tensor | None = None) -> Tensor:
        """Logits ``[B, K, H, W]`` of p(c_i | c_<i[, cond]) at every position of ``index``
        ``[B, H, W]``."""
        c = self.conditioning(cond, index.shape[1:])
        return self.logits_of(self.embed(index).movedim(-1, 1), c)

    def log_prob(self, index: Tensor, cond: Tensor | None = None) -> Tensor:
        """log p(c[ | cond]) = Σ_i log p(c_i | c_<i[, cond]), one value per grid ``[B]``."""
        logp = torch.log_softmax(self.logits(index, cond), dim=1)
        return logp.gather(1, index.unsqueeze(1)).flatten(1).sum(1)

    @torch.no_grad()
    def sample(
        self,
        n: int,
        grid: tuple[int, int],
        *,
        generator: torch.Generator | None = None,
        cond: Tensor | None = None,
    ) -> Tensor:
        """``n`` exact ancestral samples ``[n, H, W]``: position by position in raster order,
        c_i ~ p(c_i | c_<i[, cond]) (one network pass per position)."""
        device = self.out.weight.device
        index = torch.zeros(n, *grid, dtype=torch.long, device=device)
        c = self.conditioning(cond, grid)
        embed = self.embed
        for i in range(grid[0]):
            for j in range(grid[1]):
                logits = self.logits_of(embed(index).movedim(-1, 1), c)
                probs = torch.softmax(logits[:, :, i, j].double(), dim=1)
                index[:, i, j] = torch.multinomial(probs, 1, generator=generator)[:, 0]
        return index
