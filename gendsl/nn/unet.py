"""The diffusion UNet of Ho et al. 2020 ("Denoising Diffusion Probabilistic Models", app. B), as
used by Song et al. 2021 for DDPM++ / NCSN++: residual blocks with GroupNorm, the t / y / vector
embedding added in every block, dropout, self-attention at chosen resolutions, factor-2 down-
and up-sampling and a skip connection from every down-path block to the up path.  With
``cross_attention = [...]`` a sequence input ``[L, E]`` (embeddings of a caption, as CLIP gives)
is attended to from the feature map after every residual block at those resolutions
(:class:`~gendsl.nn.attention.CrossAttention`; Rombach et al. 2022, Sec. 3.3).

Images whose height or width is not divisible by 2**(levels - 1) are zero-padded symmetrically
on entry and cropped on exit (28 px with four levels runs at 32, 16, 8, 4), as reference
implementations do for MNIST-sized inputs.  ``UNet(channels = [128, 256, 256, 256], blocks = 2,
attention = [16], dropout = 0.1, groups = 32)`` is the 35.7M-parameter CIFAR-10 model of Ho et
al. 2020.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gendsl.nn.attention import CrossAttention
from gendsl.nn.base import ShapedNet
from gendsl.nn.conv import common_size, split_inputs
from gendsl.nn.layers import activation as make_activation
from gendsl.nn.layers import check_positive_ints, group_norm, numel

__all__ = ["SelfAttention", "UNet", "padding_for"]


def padding_for(size: int, multiple: int) -> tuple[int, int]:
    """(before, after) zero rows that make ``size`` a multiple of ``multiple``, split evenly
    (the extra one after)."""
    extra = -size % multiple
    return extra // 2, extra - extra // 2


class SelfAttention(nn.Module):
    """Multi-head self-attention over the H·W positions of a feature map, pre-normalised and
    residual: x + W_o softmax(Q Kᵀ / √d) V (Vaswani et al. 2017; the AttnBlock of Ho et al.
    2020).  Computed by ``torch.nn.functional.scaled_dot_product_attention``."""

    def __init__(self, channels: int, heads: int, groups: int):
        super().__init__()
        if channels % heads:
            raise ValueError(f"attention heads ({heads}) must divide the channels ({channels})")
        self.heads = heads
        self.norm = group_norm(channels, groups)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.out = nn.Conv2d(channels, channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        b, c, h, w = x.shape
        qkv = self.qkv(self.norm(x)).reshape(b, 3, self.heads, c // self.heads, h * w)
        q, k, v = (qkv[:, i].transpose(-1, -2) for i in range(3))
        a = F.scaled_dot_product_attention(q, k, v)  # [b, heads, h*w, c/heads]
        return x + self.out(a.transpose(-1, -2).reshape(b, c, h, w))


class ResBlock(nn.Module):
    """GroupNorm-act-conv, + the embedding, GroupNorm-act-dropout-conv, + a (1×1) skip
    (Ho et al. 2020, app. B; Wide ResNet of Zagoruyko & Komodakis 2016)."""

    def __init__(self, c_in: int, c_out: int, emb_dim: int, groups: int, act: str, p: float):
        super().__init__()
        self.norm1 = group_norm(c_in, groups)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.emb = nn.Linear(emb_dim, c_out) if emb_dim else None
        self.norm2 = group_norm(c_out, groups)
        self.dropout = nn.Dropout(p)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1)
        self.act = make_activation(act)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: Tensor, emb: Tensor | None) -> Tensor:
        h = self.conv1(self.act(self.norm1(x)))
        if self.emb is not None:
            h = h + self.emb(self.act(emb))[:, :, None, None]
        h = self.conv2(self.dropout(self.act(self.norm2(h))))
        return h + self.skip(x)


class _Stage(nn.Module):
    """A residual block, followed by self-attention and cross-attention when the level has
    them."""

    def __init__(
        self, block: ResBlock, attention: SelfAttention | None, cross: CrossAttention | None
    ):
        super().__init__()
        self.block = block
        self.attention = attention
        self.cross = cross

    def forward(self, x: Tensor, emb: Tensor | None, context: Tensor | None = None) -> Tensor:
        h = self.block(x, emb)
        h = h if self.attention is None else self.attention(h)
        return h if self.cross is None else self.cross(h, context)


def _sequence_input(
    shapes: Sequence[tuple[int, ...]], others: Sequence[int], cross: bool
) -> int | None:
    """The index of the sequence input ``[L, E]`` that cross-attention reads (``None`` without
    cross-attention, where every non-image input joins the embedding)."""
    if not cross:
        return None
    found = [i for i in others if len(shapes[i]) == 2]
    if len(found) != 1:
        raise ValueError(
            "cross_attention needs exactly one sequence input [L, E], got "
            f"{[list(shapes[i]) for i in found] or 'none'}"
        )
    return found[0]


def _int_option(name: str, value: object) -> int:
    (out,) = check_positive_ints(name, [value] if isinstance(value, int) else value)
    return out


class UNet(ShapedNet):
    """The DDPM / NCSN++ UNet (see the module docstring).

    Image inputs are stacked along channels; vector inputs join the t / y context, which an MLP
    maps to a ``4 * channels[0]`` embedding added in every residual block.

    :param channels: width of each level; level i runs at 1/2**i of the (padded) input size.
    :param blocks: residual blocks per level on the down path (the up path has one more).
    :param attention: resolutions (feature-map heights) at which self-attention follows every
        residual block; each must be the height of some level.  The middle always has one.
    :param cross_attention: resolutions at which cross-attention to the one sequence input
        ``[L, E]`` follows every residual block (and the middle's self-attention).
    :param heads: attention heads.
    :param dropout: dropout probability inside the residual blocks.
    :param groups: GroupNorm groups (the largest divisor of the width that is <= groups).
    """

    def __init__(
        self,
        *,
        channels: Sequence[int] = (32, 64),
        blocks: int = 1,
        attention: Sequence[int] = (),
        cross_attention: Sequence[int] = (),
        heads: int = 1,
        dropout: float = 0.0,
        groups: int = 8,
        activation: str = "silu",
        **shapes,
    ):
        super().__init__(**shapes)
        widths = check_positive_ints("channels", channels)
        n_blocks = _int_option("blocks", blocks)
        heads = _int_option("heads", heads)
        groups = _int_option("groups", groups)
        attn_at = set(check_positive_ints("attention", attention, allow_empty=True))
        cross_at = set(check_positive_ints("cross_attention", cross_attention, allow_empty=True))
        if not isinstance(dropout, (int, float)) or not 0 <= dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
        self.images, self.vectors = split_inputs(self.in_shapes)
        self.sequence = _sequence_input(self.in_shapes, self.vectors, bool(cross_at))
        self.vectors = [i for i in self.vectors if i != self.sequence]
        if not self.images:
            raise ValueError(f"a UNet needs an image input [C, H, W], got {self.in_shapes}")
        size = common_size(self.in_shapes, self.images)
        if len(self.out_shape) != 3 or self.out_shape[1:] != size:
            raise ValueError(
                f"a UNet outputs an image of its input size [C, {size[0]}, {size[1]}], "
                f"got {self.out_shape}"
            )
        levels = len(widths)
        self.pad_h = padding_for(size[0], 2 ** (levels - 1))
        self.pad_w = padding_for(size[1], 2 ** (levels - 1))
        height = size[0] + sum(self.pad_h)
        heights = [height // 2**i for i in range(levels)]
        for name, at in (("attention", attn_at), ("cross_attention", cross_at)):
            missing = sorted(at - set(heights))
            if missing:
                raise ValueError(
                    f"{name} at resolution {missing} but the levels have heights {heights}"
                )
        embed_dim = self.in_shapes[self.sequence][1] if self.sequence is not None else 0
        ctx_dim = self.context_dim + sum(numel(self.in_shapes[i]) for i in self.vectors)
        emb_dim = 4 * widths[0] if ctx_dim else 0
        self.embed = (
            nn.Sequential(
                nn.Linear(ctx_dim, emb_dim),
                make_activation(activation),
                nn.Linear(emb_dim, emb_dim),
            )
            if ctx_dim
            else None
        )

        def stage(c_in: int, c_out: int, level: int) -> _Stage:
            attn = SelfAttention(c_out, heads, groups) if heights[level] in attn_at else None
            cross = (
                CrossAttention(c_out, embed_dim, heads, groups)
                if heights[level] in cross_at
                else None
            )
            return _Stage(ResBlock(c_in, c_out, emb_dim, groups, activation, dropout), attn, cross)

        c_in = sum(self.in_shapes[i][0] for i in self.images)
        self.conv_in = nn.Conv2d(c_in, widths[0], 3, padding=1)
        skips = [widths[0]]
        self.down = nn.ModuleList()
        c_prev = widths[0]
        for i, c in enumerate(widths):
            for _ in range(n_blocks):
                self.down.append(stage(c_prev, c, i))
                c_prev = c
                skips.append(c)
            if i < levels - 1:
                self.down.append(nn.Conv2d(c, c, 3, stride=2, padding=1))
                skips.append(c)
        self.mid1 = ResBlock(c_prev, c_prev, emb_dim, groups, activation, dropout)
        self.mid_attention = SelfAttention(c_prev, heads, groups)
        self.mid_cross = (
            CrossAttention(c_prev, embed_dim, heads, groups) if heights[-1] in cross_at else None
        )
        self.mid2 = ResBlock(c_prev, c_prev, emb_dim, groups, activation, dropout)
        self.up = nn.ModuleList()
        for i in reversed(range(levels)):
            for _ in range(n_blocks + 1):
                self.up.append(stage(c_prev + skips.pop(), widths[i], i))
                c_prev = widths[i]
            if i > 0:
                self.up.append(
                    nn.Sequential(
                        nn.Upsample(scale_factor=2, mode="nearest"),
                        nn.Conv2d(c_prev, c_prev, 3, padding=1),
                    )
                )
        self.norm_out = group_norm(c_prev, groups)
        self.act = make_activation(activation)
        self.conv_out = nn.Conv2d(c_prev, self.out_shape[0], 3, padding=1)

    def _embedding(self, inputs: Sequence[Tensor], t, y) -> Tensor | None:
        parts = [inputs[i].reshape(inputs[i].shape[0], -1) for i in self.vectors]
        ctx = self.context(t, y, inputs[0])
        parts += [] if ctx is None else [ctx]
        return self.embed(torch.cat(parts, dim=1)) if self.embed is not None else None

    def forward(self, *inputs: Tensor, t: Tensor | float | None = None, y: Tensor | None = None):
        self.check_inputs(inputs)
        emb = self._embedding(inputs, t, y)
        x = torch.cat([inputs[i] for i in self.images], dim=1)
        x = F.pad(x, (*self.pad_w, *self.pad_h))
        ctx = None if self.sequence is None else inputs[self.sequence]
        h = self.conv_in(x)
        skips = [h]
        for layer in self.down:
            h = layer(h, emb, ctx) if isinstance(layer, _Stage) else layer(h)
            skips.append(h)
        h = self.mid_attention(self.mid1(h, emb))
        h = h if self.mid_cross is None else self.mid_cross(h, ctx)
        h = self.mid2(h, emb)
        for layer in self.up:
            if isinstance(layer, _Stage):
                h = layer(torch.cat([h, skips.pop()], dim=1), emb, ctx)
            else:
                h = layer(h)
        h = self.conv_out(self.act(self.norm_out(h)))
        (top, bottom), (left, right) = self.pad_h, self.pad_w
        return h[:, :, top : h.shape[2] - bottom, left : h.shape[3] - right]
