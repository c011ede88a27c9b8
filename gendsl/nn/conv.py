"""Convolutional networks for small images [C, H, W]: a plain (transposed) ConvNet and a UNet."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from gendsl.nn.base import ShapedNet
from gendsl.nn.layers import activation as make_activation
from gendsl.nn.layers import check_positive_ints, group_norm, maybe_spectral_norm, numel

__all__ = ["ConvNet", "UNet"]


def _split_inputs(shapes: Sequence[tuple[int, ...]]) -> tuple[list[int], list[int]]:
    """Indices of the image inputs (3-D) and of the other inputs (flattened into the context)."""
    images = [i for i, s in enumerate(shapes) if len(s) == 3]
    return images, [i for i in range(len(shapes)) if i not in images]


def _common_size(shapes: Sequence[tuple[int, ...]], images: list[int]) -> tuple[int, int]:
    sizes = {shapes[i][1:] for i in images}
    if len(sizes) != 1:
        raise ValueError(f"image inputs must share height and width, got {sorted(sizes)}")
    (size,) = sizes
    return size


def _halvings(size: tuple[int, int], target: tuple[int, int], limit: int) -> int:
    """k with size / 2**k == target, at most ``limit``, or a ValueError quoting both sizes."""
    for k in range(limit + 1):
        if (size[0] == target[0] * 2**k) and (size[1] == target[1] * 2**k):
            return k
    raise ValueError(
        f"cannot map spatial size {size} to {target} with at most {limit} factor-2 steps"
    )


def _max_halvings(size: tuple[int, int], limit: int) -> int:
    k = 0
    while k < limit and size[0] % 2 ** (k + 1) == 0 and size[1] % 2 ** (k + 1) == 0:
        k += 1
    return k


class ConvNet(ShapedNet):
    """Convolution stages of widths ``channels``, each a conv, a per-channel context shift and an
    activation.

    Encoder (``transpose = False``): image inputs are stacked along channels; the first stages
    halve the resolution (stride 2) until the output size is reached; a vector output is read
    by a linear layer from the flattened last feature map.  Decoder (``transpose = True``): an
    image input, or a linear map of the vector inputs onto a coarse grid, is doubled by
    transposed convolutions (kernel 4, stride 2) until the output size is reached.  Vector
    inputs other than the main one, t and y form a context added per channel after every conv.
    """

    def __init__(
        self,
        *,
        channels: Sequence[int] = (32, 64),
        transpose: bool = False,
        kernel: int = 3,
        activation: str = "silu",
        spectral_norm: bool = False,
        **shapes,
    ):
        super().__init__(**shapes)
        widths = check_positive_ints("channels", channels)
        if not isinstance(kernel, int) or kernel < 1 or kernel % 2 == 0:
            raise ValueError(f"kernel must be an odd positive integer, got {kernel!r}")
        self.transpose = bool(transpose)
        self.images, self.vectors = _split_inputs(self.in_shapes)
        self.from_vector = self.transpose and not self.images
        ctx_dim = self.context_dim
        if not self.from_vector:
            ctx_dim += sum(numel(self.in_shapes[i]) for i in self.vectors)
        if not self.images and not self.transpose:
            raise ValueError(
                f"a ConvNet encoder needs an image input [C, H, W], got {self.in_shapes}"
            )
        out_image = len(self.out_shape) == 3
        if self.transpose and not out_image:
            raise ValueError(
                f"a transposed ConvNet outputs an image [C, H, W], got {self.out_shape}"
            )
        sn = bool(spectral_norm)
        pad = kernel // 2

        if self.from_vector:
            k = _max_halvings(self.out_shape[1:], len(widths))
            self.grid = (widths[0], self.out_shape[1] // 2**k, self.out_shape[2] // 2**k)
            d_vec = sum(numel(s) for s in self.in_shapes)
            self.project = maybe_spectral_norm(nn.Linear(d_vec, numel(self.grid)), sn)
            c_prev, steps = widths[0], k
        else:
            size = _common_size(self.in_shapes, self.images)
            c_prev = sum(self.in_shapes[i][0] for i in self.images)
            if self.transpose:
                steps = _halvings(self.out_shape[1:], size, len(widths))
            elif out_image:
                if self.out_shape[1] > size[0] or self.out_shape[2] > size[1]:
                    raise ValueError(
                        f"an encoder cannot enlarge {size} to {self.out_shape[1:]}; "
                        "use transpose = true"
                    )
                steps = _halvings(size, self.out_shape[1:], len(widths))
            else:
                steps = _max_halvings(size, len(widths))
            self.grid = (c_prev, *size)

        self.convs = nn.ModuleList()
        self.shifts = nn.ModuleList()
        for i, c in enumerate(widths):
            if i < steps and self.transpose:
                conv = nn.ConvTranspose2d(c_prev, c, 4, stride=2, padding=1)
            else:
                conv = nn.Conv2d(c_prev, c, kernel, stride=2 if i < steps else 1, padding=pad)
            self.convs.append(maybe_spectral_norm(conv, sn))
            self.shifts.append(nn.Linear(ctx_dim, c) if ctx_dim else nn.Identity())
            c_prev = c
        self.act = make_activation(activation)
        if out_image:
            head = nn.Conv2d(c_prev, self.out_shape[0], kernel, padding=pad)
            self.head = maybe_spectral_norm(head, sn)
        else:
            h, w = self.grid[1] // 2**steps, self.grid[2] // 2**steps
            head = maybe_spectral_norm(nn.Linear(c_prev * h * w, self.out_numel), sn)
            self.head = nn.Sequential(nn.Flatten(), head)
        self.has_context = ctx_dim > 0

    def forward(self, *inputs: Tensor, t: Tensor | float | None = None, y: Tensor | None = None):
        self.check_inputs(inputs)
        flat = [inputs[i].reshape(inputs[i].shape[0], -1) for i in self.vectors]
        ctx = self.context(t, y, inputs[0])
        if self.from_vector:
            h = self.act(self.project(torch.cat(flat, dim=1)))
            h = h.reshape(h.shape[0], *self.grid)
            parts = [] if ctx is None else [ctx]
        else:
            h = torch.cat([inputs[i] for i in self.images], dim=1)
            parts = flat + ([] if ctx is None else [ctx])
        c = torch.cat(parts, dim=1) if parts else None
        for conv, shift in zip(self.convs, self.shifts, strict=True):
            h = conv(h)
            if self.has_context:
                h = h + shift(c)[:, :, None, None]
            h = self.act(h)
        return self.to_output(self.head(h))


class _ResBlock(nn.Module):
    """GroupNorm-act-conv twice with the embedding added in between (Ho et al. 2020, app. B)."""

    def __init__(self, c_in: int, c_out: int, emb_dim: int, groups: int, act: str):
        super().__init__()
        self.norm1 = group_norm(c_in, groups)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.emb = nn.Linear(emb_dim, c_out) if emb_dim else None
        self.norm2 = group_norm(c_out, groups)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1)
        self.act = make_activation(act)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: Tensor, emb: Tensor | None) -> Tensor:
        h = self.conv1(self.act(self.norm1(x)))
        if self.emb is not None:
            h = h + self.emb(self.act(emb))[:, :, None, None]
        h = self.conv2(self.act(self.norm2(h)))
        return h + self.skip(x)


class UNet(ShapedNet):
    """A small UNet (Ronneberger et al. 2015) in the DDPM form (Ho et al. 2020): residual blocks
    with GroupNorm, the t / y embedding added in every block, factor-2 down- and up-sampling
    between ``channels`` levels, and skip connections joined by concatenation.

    Image inputs are stacked along channels; other inputs join the embedding.  The output has
    the inputs' height and width, which must be divisible by 2**(len(channels) - 1).
    """

    def __init__(
        self,
        *,
        channels: Sequence[int] = (32, 64),
        blocks: int = 1,
        groups: int = 8,
        activation: str = "silu",
        **shapes,
    ):
        super().__init__(**shapes)
        widths = check_positive_ints("channels", channels)
        (n_blocks,) = check_positive_ints(
            "blocks", [blocks] if isinstance(blocks, int) else blocks
        )
        (groups,) = check_positive_ints("groups", [groups] if isinstance(groups, int) else groups)
        self.images, self.vectors = _split_inputs(self.in_shapes)
        if not self.images:
            raise ValueError(f"a UNet needs an image input [C, H, W], got {self.in_shapes}")
        size = _common_size(self.in_shapes, self.images)
        if len(self.out_shape) != 3 or self.out_shape[1:] != size:
            raise ValueError(
                f"a UNet outputs an image of its input size [C, {size[0]}, {size[1]}], "
                f"got {self.out_shape}"
            )
        levels = len(widths)
        if size[0] % 2 ** (levels - 1) or size[1] % 2 ** (levels - 1):
            raise ValueError(
                f"image size {size} must be divisible by 2**{levels - 1} for {levels} levels"
            )
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

        def block(c_in: int, c_out: int) -> _ResBlock:
            return _ResBlock(c_in, c_out, emb_dim, groups, activation)

        c_in = sum(self.in_shapes[i][0] for i in self.images)
        self.conv_in = nn.Conv2d(c_in, widths[0], 3, padding=1)
        self.down = nn.ModuleList()
        self.downsample = nn.ModuleList()
        c_prev = widths[0]
        for i, c in enumerate(widths):
            self.down.append(
                nn.ModuleList(block(c_prev if j == 0 else c, c) for j in range(n_blocks))
            )
            c_prev = c
            if i < levels - 1:
                self.downsample.append(nn.Conv2d(c, c, 3, stride=2, padding=1))
        self.mid = block(c_prev, c_prev)
        self.up = nn.ModuleList()
        self.upsample = nn.ModuleList()
        for i in reversed(range(levels)):
            c = widths[i]
            self.up.append(
                nn.ModuleList(block((c_prev + c) if j == 0 else c, c) for j in range(n_blocks))
            )
            c_prev = c
            if i > 0:
                self.upsample.append(
                    nn.Sequential(
                        nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(c, c, 3, padding=1)
                    )
                )
        self.norm_out = group_norm(c_prev, groups)
        self.act = make_activation(activation)
        self.conv_out = nn.Conv2d(c_prev, self.out_shape[0], 3, padding=1)

    def forward(self, *inputs: Tensor, t: Tensor | float | None = None, y: Tensor | None = None):
        self.check_inputs(inputs)
        parts = [inputs[i].reshape(inputs[i].shape[0], -1) for i in self.vectors]
        ctx = self.context(t, y, inputs[0])
        parts += [] if ctx is None else [ctx]
        emb = self.embed(torch.cat(parts, dim=1)) if self.embed is not None else None
        h = self.conv_in(torch.cat([inputs[i] for i in self.images], dim=1))
        skips = []
        for i, level in enumerate(self.down):
            for blk in level:
                h = blk(h, emb)
            skips.append(h)
            if i < len(self.downsample):
                h = self.downsample[i](h)
        h = self.mid(h, emb)
        for j, level in enumerate(self.up):
            h = torch.cat([h, skips.pop()], dim=1)
            for blk in level:
                h = blk(h, emb)
            if j < len(self.upsample):
                h = self.upsample[j](h)
        return self.conv_out(self.act(self.norm_out(h)))
