"""The common base of the shape-inferred networks.

A :class:`ShapedNet` knows the per-sample shapes of its positional inputs and of its output
(the compiler infers them from how the network is used) and turns the optional time ``t`` and
class label ``y`` into one context vector that subclasses feed to their layers.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from gendsl.nn.embeddings import TIME_EMBEDDINGS, LabelEmbedding, as_time_batch, time_embedding
from gendsl.nn.layers import numel

__all__ = ["ShapedNet", "TimeSpec", "parse_time"]

TimeSpec = str | tuple[str, int] | list | None


def parse_time(time: TimeSpec, time_dim: int) -> tuple[str | None, int]:
    """Read a time option: ``None``, a kind (``"fourier"``) or a kind and size (``("fourier",
    32)``, the compiler's form of ``time = fourier(32)``)."""
    if time is None:
        return None, time_dim
    if isinstance(time, (tuple, list)):
        if len(time) != 2 or not isinstance(time[1], int) or isinstance(time[1], bool):
            raise ValueError(f"time must be a kind or (kind, size), got {time!r}")
        time, time_dim = time[0], time[1]
    if time not in TIME_EMBEDDINGS:
        raise ValueError(f"time must be one of {', '.join(TIME_EMBEDDINGS)}, got {time!r}")
    return time, time_dim


def _shape(name: str, shape: object) -> tuple[int, ...]:
    ok = isinstance(shape, (tuple, list)) and all(
        isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in shape
    )
    if not ok:
        raise ValueError(f"{name} must be a tuple of positive integers, got {shape!r}")
    return tuple(shape)


class ShapedNet(nn.Module):
    """Base class: input/output shapes, time embedding, label embedding.

    :param in_shapes: per-sample shape of each positional input.
    :param out_shape: per-sample shape of the output.
    :param time: ``None`` (no time input) or a time embedding kind, see :func:`parse_time`.
    :param time_dim: size of the Fourier / sinusoidal embedding.
    :param time_scale: frequency scale of the embedding (``None``: the embedding's default).
    :param cond_classes: number of classes of a label input ``y`` (``None``: no label).
    :param cond_dim: size of the label embedding.
    """

    def __init__(
        self,
        *,
        in_shapes: Sequence[Sequence[int]],
        out_shape: Sequence[int],
        time: TimeSpec = None,
        time_dim: int = 32,
        time_scale: float | None = None,
        cond_classes: int | None = None,
        cond_dim: int = 32,
    ):
        super().__init__()
        self.in_shapes = [_shape(f"input shape {i}", s) for i, s in enumerate(in_shapes)]
        self.out_shape = _shape("output shape", out_shape)
        kind, time_dim = parse_time(time, time_dim)
        self.time_kind = kind
        self.time_embed = (
            None if kind is None else time_embedding(kind, time_dim, scale=time_scale)
        )
        self.label_embed = None if cond_classes is None else LabelEmbedding(cond_classes, cond_dim)

    @property
    def context_dim(self) -> int:
        """Size of the vector :meth:`context` returns (0 when there is neither t nor y)."""
        dims = [self.time_embed.dim] if self.time_embed is not None else []
        dims += [self.label_embed.dim] if self.label_embed is not None else []
        return sum(dims)

    def check_inputs(self, inputs: Sequence[Tensor]) -> None:
        """Raise ``ValueError`` unless ``inputs`` match :attr:`in_shapes`."""
        if len(inputs) != len(self.in_shapes):
            raise ValueError(f"expected {len(self.in_shapes)} inputs, got {len(inputs)}")
        for i, (x, shape) in enumerate(zip(inputs, self.in_shapes, strict=True)):
            if tuple(x.shape[1:]) != shape:
                raise ValueError(
                    f"input {i} has per-sample shape {tuple(x.shape[1:])}, expected {shape}"
                )

    def context(self, t: Tensor | float | None, y: Tensor | None, like: Tensor) -> Tensor | None:
        """Concatenated time and label embeddings, shape [B, context_dim], or ``None``."""
        batch = like.shape[0]
        if t is not None and self.time_embed is None:
            raise ValueError("this network takes no time input, but t was given")
        if y is not None and self.label_embed is None:
            raise ValueError("this network takes no class label, but y was given")
        parts = []
        if self.time_embed is not None:
            if t is None:
                raise ValueError(f"this network takes a time input ({self.time_kind}), got none")
            parts.append(self.time_embed(as_time_batch(t, batch, like)))
        if self.label_embed is not None:
            parts.append(self.label_embed(y, batch).to(like.dtype))
        return torch.cat(parts, dim=1) if parts else None

    def to_output(self, h: Tensor) -> Tensor:
        """Reshape a [B, prod(out_shape)] tensor to [B, *out_shape]."""
        return h.reshape(h.shape[0], *self.out_shape)

    @property
    def out_numel(self) -> int:
        """Entries per output sample."""
        return numel(self.out_shape)
