"""Fully connected networks: a plain MLP and a residual MLP."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from gendsl.nn.base import ShapedNet
from gendsl.nn.layers import activation as make_activation
from gendsl.nn.layers import check_positive_ints, maybe_spectral_norm, numel
from gendsl.nn.projection import ProjectionHead

__all__ = ["MLP", "ResNet", "film"]


def film(h: Tensor, gamma: Tensor, beta: Tensor) -> Tensor:
    """FiLM(h) = (1 + γ(c)) ⊙ h + β(c), feature-wise affine modulation by a condition c (Perez
    et al. 2018, eq. 1; γ offset by 1 so that zero-initialised γ, β leave h unchanged)."""
    return (1 + gamma) * h + beta


class MLP(ShapedNet):
    """Flatten and concatenate the inputs and the t / y embeddings, then Linear-activation layers.

    With ``film = true`` only the first input goes through the layers; the other inputs and the
    t / y embeddings modulate every hidden layer by :func:`film` (a vector condition
    ``c : real[E]`` by FiLM instead of concatenation).

    :param hidden: widths of the hidden layers (may be empty: one linear map).
    :param activation: one of :data:`~gendsl.nn.layers.ACTIVATIONS`.
    :param spectral_norm: normalise every linear layer's weight (SN-GAN critics).
    :param projection: a projection discriminator's head (Miyato & Koyama 2018): the label
        is not concatenated to the inputs but projected on the last hidden features φ,
        ``out = ψ(φ) + embed(y)ᵀ φ`` (:class:`~gendsl.nn.projection.ProjectionHead`); needs a
        label, a scalar output and at least one hidden layer.
    :param film: modulate the hidden layers by the other inputs instead of concatenating them.
    """

    def __init__(
        self,
        *,
        hidden: Sequence[int] = (64, 64),
        activation: str = "silu",
        spectral_norm: bool = False,
        projection: bool = False,
        film: bool = False,
        **shapes,
    ):
        super().__init__(**shapes)
        widths = check_positive_ints("hidden", hidden, allow_empty=True)
        self.head = None
        if projection:
            if film:
                raise ValueError(
                    "projection = true and film = true do not combine: the projection head "
                    "takes the label, FiLM the other inputs"
                )
            self.head = ProjectionHead.replacing_label(self, widths, spectral_norm)
        sizes = [numel(s) for s in self.in_shapes]
        self.film = bool(film)
        cond_dim = _film_condition_size(sizes, self.context_dim, widths) if self.film else 0
        d_in = sizes[0] if self.film else sum(sizes) + self.context_dim
        if d_in == 0:
            raise ValueError("an MLP needs at least one input, a time or a label")
        dims = [d_in, *widths] + ([] if projection else [self.out_numel])
        layers: list[nn.Module] = []
        for i in range(len(dims) - 1):
            layers.append(maybe_spectral_norm(nn.Linear(dims[i], dims[i + 1]), spectral_norm))
            if i < len(dims) - 2 or projection:
                layers.append(make_activation(activation))
        self.body = nn.Sequential(*layers)
        self.modulation = nn.ModuleList(
            _zero_linear(cond_dim, 2 * w) for w in (widths if self.film else [])
        )

    def forward(self, *inputs: Tensor, t: Tensor | float | None = None, y: Tensor | None = None):
        self.check_inputs(inputs)
        like = inputs[0] if inputs else _time_like(t, y, self)
        parts = [x.reshape(x.shape[0], -1) for x in inputs]
        ctx = self.context(t, None if self.head is not None else y, like)
        parts += [] if ctx is None else [ctx]
        if self.head is not None:
            return self.to_output(self.head(self.body(_join(parts)), y))
        if not self.film:
            return self.to_output(self.body(_join(parts)))
        c, h = torch.cat(parts[1:], dim=1), parts[0]
        for i, layer in enumerate(self.body):  # Linear at even indices, activations between
            h = layer(h)
            if i % 2 == 0 and i // 2 < len(self.modulation):
                h = film(h, *self.modulation[i // 2](c).chunk(2, dim=1))
        return self.to_output(h)


def _join(parts: list[Tensor]) -> Tensor:
    """The flattened parts side by side, [B, Σ sizes]; a single part as it is (a one-tensor
    ``torch.cat`` copies it and adds a node to the backward graph, the same values)."""
    return parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)


def _film_condition_size(sizes: list[int], context_dim: int, widths: Sequence[int]) -> int:
    """The size of what FiLM modulates by: the inputs after the first, t and y."""
    cond_dim = sum(sizes[1:]) + context_dim
    if not sizes or not cond_dim or not widths:
        raise ValueError(
            "film = true needs a first input, hidden layers and a condition to modulate "
            "them (a further input, t or a label)"
        )
    return cond_dim


def _zero_linear(d_in: int, d_out: int) -> nn.Linear:
    layer = nn.Linear(d_in, d_out)
    nn.init.zeros_(layer.weight)
    nn.init.zeros_(layer.bias)
    return layer


class _ResidualBlock(nn.Module):
    """h + W₂ act(W₁ act(LN(h)) + E c): a pre-activation residual block (He et al. 2016)."""

    def __init__(self, width: int, context_dim: int, act: str):
        super().__init__()
        self.norm = nn.LayerNorm(width)
        self.act = make_activation(act)
        self.fc1 = nn.Linear(width, width)
        self.fc2 = nn.Linear(width, width)
        self.cond = nn.Linear(context_dim, width) if context_dim else None

    def forward(self, h: Tensor, c: Tensor | None) -> Tensor:
        u = self.fc1(self.act(self.norm(h)))
        if self.cond is not None:
            u = u + self.cond(c)
        return h + self.fc2(self.act(u))


class ResNet(ShapedNet):
    """A residual MLP: input projection, ``blocks`` residual blocks of width ``hidden``, output
    projection.  The t / y context is added inside every block."""

    def __init__(self, *, hidden: int = 128, blocks: int = 2, activation: str = "silu", **shapes):
        super().__init__(**shapes)
        (width,) = check_positive_ints("hidden", [hidden] if isinstance(hidden, int) else hidden)
        (n_blocks,) = check_positive_ints(
            "blocks", [blocks] if isinstance(blocks, int) else blocks
        )
        d_in = sum(numel(s) for s in self.in_shapes)
        if d_in == 0:
            raise ValueError("a ResNet needs at least one input")
        self.inp = nn.Linear(d_in, width)
        self.blocks = nn.ModuleList(
            _ResidualBlock(width, self.context_dim, activation) for _ in range(n_blocks)
        )
        self.out = nn.Sequential(
            nn.LayerNorm(width), make_activation(activation), nn.Linear(width, self.out_numel)
        )

    def forward(self, *inputs: Tensor, t: Tensor | float | None = None, y: Tensor | None = None):
        self.check_inputs(inputs)
        h = self.inp(_join([x.reshape(x.shape[0], -1) for x in inputs]))
        c = self.context(t, y, inputs[0])
        for block in self.blocks:
            h = block(h, c)
        return self.to_output(self.out(h))


def _time_like(t: Tensor | float | None, y: Tensor | None, net: ShapedNet) -> Tensor:
    """A [B] reference tensor (device, dtype, batch) when a network has no positional input."""
    ref = next(net.parameters())
    if isinstance(t, Tensor) and t.dim() > 0:
        return t.reshape(t.shape[0], -1).to(ref.dtype)
    if y is not None:
        return torch.zeros(y.shape[0], device=ref.device, dtype=ref.dtype)
    raise ValueError("without positional inputs, a batched t or y is needed for the batch size")
