"""Networks that are a single embedding: a label table and a time feature map."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from gendsl.nn.base import ShapedNet
from gendsl.nn.embeddings import time_embedding

__all__ = ["Embedding", "TimeFeatures"]


def _single_input(net: ShapedNet, inputs: tuple[Tensor, ...], keyword: Tensor | None, name: str):
    if len(inputs) + (keyword is not None) != 1:
        raise ValueError(
            f"{type(net).__name__} takes exactly one {name}, got {len(inputs)} "
            f"positional and {int(keyword is not None)} keyword"
        )
    return inputs[0] if inputs else keyword


class Embedding(ShapedNet):
    """A learned table: class ``k`` maps to a tensor of ``out_shape``; index ``classes`` is the
    null class of classifier-free guidance (Ho & Salimans 2022)."""

    def __init__(self, *, classes: int | None = None, cond_classes: int | None = None, **shapes):
        super().__init__(**shapes)
        classes = cond_classes if classes is None else classes
        if not isinstance(classes, int) or isinstance(classes, bool) or classes < 1:
            raise ValueError(f"Embedding needs classes >= 1, got {classes!r}")
        if any(s not in ((), (1,)) for s in self.in_shapes) or len(self.in_shapes) > 1:
            raise ValueError(f"Embedding takes one label input, got shapes {self.in_shapes}")
        self.classes = classes
        self.table = nn.Embedding(classes + 1, self.out_numel)

    def forward(self, *inputs: Tensor, t: Tensor | None = None, y: Tensor | None = None):
        label = _single_input(self, inputs, y, "label").long().reshape(-1)
        if label.numel() and (int(label.min()) < 0 or int(label.max()) > self.classes):
            raise ValueError(
                f"labels must lie in 0..{self.classes}, got values in "
                f"{int(label.min())}..{int(label.max())}"
            )
        return self.to_output(self.table(label))


class TimeFeatures(ShapedNet):
    """The Fourier or sinusoidal features of ``t`` as a network of its own (no parameters)."""

    def __init__(self, *, kind: str, dim: int | None = None, scale: float | None = None, **shapes):
        super().__init__(**shapes)
        if len(self.out_shape) != 1 or (dim is not None and dim != self.out_shape[0]):
            raise ValueError(f"{kind} features of size {dim} cannot have shape {self.out_shape}")
        if any(s not in ((), (1,)) for s in self.in_shapes) or len(self.in_shapes) > 1:
            raise ValueError(f"{kind} features take one time input, got shapes {self.in_shapes}")
        self.features = time_embedding(kind, self.out_shape[0], scale=scale)

    def forward(self, *inputs: Tensor, t: Tensor | float | None = None, y: Tensor | None = None):
        time = _single_input(self, inputs, None if t is None else torch.as_tensor(t), "time")
        ref = next(self.buffers(), time)
        time = time.reshape(-1).to(ref.device)
        return self.features(time if time.is_floating_point() else time.float())
