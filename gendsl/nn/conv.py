"""A plain convolutional encoder / (transposed) decoder for small images [C, H, W]."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from gendsl.nn.base import ShapedNet
from gendsl.nn.layers import activation as make_activation
from gendsl.nn.layers import (
    check_positive_ints,
    group_norm,
    maybe_spectral_norm,
    numel,
    zero_module,
)
from gendsl.strides import (
    Size,
    halved,
    size_chain,
    stride_stages,
    transposed_padding,
)

__all__ = ["NORMS", "ConvNet", "common_size", "split_inputs"]


def split_inputs(shapes: Sequence[tuple[int, ...]]) -> tuple[list[int], list[int]]:
    """Indices of the image inputs (3-D) and of the other inputs (flattened into the context)."""
    images = [i for i, s in enumerate(shapes) if len(s) == 3]
    return images, [i for i in range(len(shapes)) if i not in images]


def common_size(shapes: Sequence[tuple[int, ...]], images: list[int]) -> tuple[int, int]:
    sizes = {shapes[i][1:] for i in images}
    if len(sizes) != 1:
        raise ValueError(f"image inputs must share height and width, got {sorted(sizes)}")
    (size,) = sizes
    return size


def _max_halvings(size: tuple[int, int], limit: int) -> int:
    k = 0
    while k < limit and size[0] % 2 ** (k + 1) == 0 and size[1] % 2 ** (k + 1) == 0:
        k += 1
    return k


def _check_stages(name: str, value: int | None, widths: list[int]) -> None:
    if value is None:
        return
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
    if value > len(widths):
        raise ValueError(f"{name} = {value} needs {value} stages, but channels has {len(widths)}")


def _up_conv(c_in: int, c_out: int, size: Size, target: Size) -> nn.ConvTranspose2d:
    """A 4×4 stride-2 transposed convolution from ``size`` to ``target`` (2n or 2n − 1 per
    axis, :func:`gendsl.strides.transposed_padding`)."""
    (ph, oh), (pw, ow) = (transposed_padding(n, m) for n, m in zip(size, target, strict=True))
    return nn.ConvTranspose2d(c_in, c_out, 4, stride=2, padding=(ph, pw), output_padding=(oh, ow))


NORMS = ("none", "batch", "group")


def _norm(kind: str, channels: int) -> nn.Module:
    """The normalisation after a convolution: none, BatchNorm (Ioffe & Szegedy 2015; the DCGAN
    generator, Radford et al. 2016) or GroupNorm with up to 8 groups (Wu & He 2018)."""
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "group":
        return group_norm(channels, 8)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"norm must be one of {', '.join(NORMS)}, got {kind!r}")


class ConvNet(ShapedNet):
    """Convolution stages of widths ``channels``, each a conv, a per-channel context shift, an
    optional normalisation and an activation, then a head.

    Encoder (``transpose = False``): image inputs are stacked along channels; the first stages
    halve the resolution (stride 2; an odd size is padded, n -> ⌈n/2⌉) until the output size is
    reached, or ``down`` times when declared (the VQ-VAE's code grid, van den Oord et al. 2017,
    Sec. 4.1: 28 -> 14 -> 7); a vector output is read by a linear layer from the flattened last
    feature map.  Decoder (``transpose = True``): an image input, or a linear map of the vector
    inputs onto a coarse grid, is doubled by transposed convolutions (kernel 4, stride 2) until
    the output size is reached, or ``up`` times when declared (the DCGAN generator of Radford
    et al. 2016); a stage whose target is odd gives 2n − 1 instead of 2n, so a decoder undoes
    an encoder's padding exactly (:mod:`gendsl.strides`).  Vector inputs other than the main
    one, t and y form a context added per channel after every conv.  An output [..., H, W] of
    more than three axes (a coupling's (2, C, H, W), a packed Normal's loc and scale) is
    produced as prod(...) channels and reshaped.

    :param down: an encoder's number of stride-2 stages (``None``: inferred from the shapes).
    :param up: a decoder's number of stride-2 transposed stages (``None``: inferred).
    :param norm: ``none``, ``batch`` or ``group`` after every stage's conv.
    :param spectral_norm: W / σ(W) on every conv and linear layer (Miyato et al. 2018).
    :param zero_out: start the head at zero, so that a coupling layer starts as the identity
        (Kingma & Dhariwal 2018, Sec. 3.3).
    """

    def __init__(
        self,
        *,
        channels: Sequence[int] = (32, 64),
        transpose: bool = False,
        kernel: int = 3,
        activation: str = "silu",
        spectral_norm: bool = False,
        norm: str = "none",
        zero_out: bool = False,
        down: int | None = None,
        up: int | None = None,
        **shapes,
    ):
        super().__init__(**shapes)
        widths = check_positive_ints("channels", channels)
        if not isinstance(kernel, int) or kernel < 1 or kernel % 2 == 0:
            raise ValueError(f"kernel must be an odd positive integer, got {kernel!r}")
        _norm(norm, 1)
        self.transpose = bool(transpose)
        self._check_resampling(down, up, widths)
        self.images, self.vectors = split_inputs(self.in_shapes)
        self.from_vector = self.transpose and not self.images
        self.out_image = len(self.out_shape) >= 3
        self._check_kinds()
        sn = bool(spectral_norm)
        c_prev, steps = self._entry(widths, sn, down if up is None else up)
        ctx_dim = self.context_dim
        if not self.from_vector:
            ctx_dim += sum(numel(self.in_shapes[i]) for i in self.vectors)
        self.convs = nn.ModuleList()
        self.shifts = nn.ModuleList()
        self.norms = nn.ModuleList()
        chain = size_chain(self.out_shape[-2:], steps) if self.transpose else []
        for i, c in enumerate(widths):
            if i < steps and self.transpose:
                conv = _up_conv(c_prev, c, chain[steps - i], chain[steps - i - 1])
            else:
                conv = nn.Conv2d(
                    c_prev, c, kernel, stride=2 if i < steps else 1, padding=kernel // 2
                )
            self.convs.append(maybe_spectral_norm(conv, sn))
            self.shifts.append(nn.Linear(ctx_dim, c) if ctx_dim else nn.Identity())
            self.norms.append(_norm(norm, c))
            c_prev = c
        self.act = make_activation(activation)
        self.head = self._head(c_prev, steps, kernel, sn)
        if zero_out:
            zero_module(self.head)
        self.has_context = ctx_dim > 0

    def _check_kinds(self) -> None:
        if not self.images and not self.transpose:
            raise ValueError(
                f"a ConvNet encoder needs an image input [C, H, W], got {self.in_shapes}"
            )
        if self.transpose and not self.out_image:
            raise ValueError(
                f"a transposed ConvNet outputs an image [C, H, W], got {self.out_shape}"
            )

    def _check_resampling(self, down: int | None, up: int | None, widths: list[int]) -> None:
        if down is not None and self.transpose:
            raise ValueError("down is for an encoder; a transposed ConvNet takes up = k")
        if up is not None and not self.transpose:
            raise ValueError("up is for a transposed ConvNet; an encoder takes down = k")
        _check_stages("down", down, widths)
        _check_stages("up", up, widths)

    def _entry(self, widths: list[int], sn: bool, declared: int | None) -> tuple[int, int]:
        """Set :attr:`grid` (the first feature map) and return its channels and the number of
        resolution-changing stages (``declared``: the ``down`` or ``up`` option)."""
        out_size, n_stages = self.out_shape[-2:], len(widths)
        if self.from_vector:
            k = _max_halvings(out_size, n_stages) if declared is None else declared
            self.grid = (widths[0], *halved(out_size, k))
            d_vec = sum(numel(s) for s in self.in_shapes)
            self.project = maybe_spectral_norm(nn.Linear(d_vec, numel(self.grid)), sn)
            return self.grid[0], k
        size = common_size(self.in_shapes, self.images)
        self.grid = (sum(self.in_shapes[i][0] for i in self.images), *size)
        if self.transpose:
            return self.grid[0], stride_stages(size, out_size, n_stages, declared, transpose=True)
        if not self.out_image:
            k = _max_halvings(size, n_stages) if declared is None else declared
            return self.grid[0], k
        if out_size[0] > size[0] or out_size[1] > size[1]:
            raise ValueError(
                f"an encoder cannot enlarge {size} to {out_size}; use transpose = true"
            )
        return self.grid[0], stride_stages(size, out_size, n_stages, declared, transpose=False)

    def _head(self, c_prev: int, steps: int, kernel: int, sn: bool) -> nn.Module:
        if self.out_image:
            c_out = numel(self.out_shape[:-2])
            return maybe_spectral_norm(nn.Conv2d(c_prev, c_out, kernel, padding=kernel // 2), sn)
        h, w = halved(self.grid[1:], steps)
        head = maybe_spectral_norm(nn.Linear(c_prev * h * w, self.out_numel), sn)
        return nn.Sequential(nn.Flatten(), head)

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
        for conv, shift, norm in zip(self.convs, self.shifts, self.norms, strict=True):
            h = conv(h)
            if self.has_context:
                h = h + shift(c)[:, :, None, None]
            h = self.act(norm(h))
        return self.to_output(self.head(h))
