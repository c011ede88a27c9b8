"""ControlNet-style control branches (Zhang, Rao & Agrawala 2023, "Adding Conditional Control
to Text-to-Image Diffusion Models")."""

from __future__ import annotations

import copy

from torch import Tensor, nn

from gendsl.nn.base import ShapedNet
from gendsl.nn.layers import numel, zero_module

__all__ = ["ControlBranch", "copy_for_control"]


def _projection(src: tuple[int, ...], dst: tuple[int, ...]) -> nn.Module:
    """A map from per-sample shape ``src`` to ``dst``: a 1×1 convolution between images of one
    size, a linear map (with reshape) otherwise."""
    if len(src) == 3 and len(dst) == 3 and src[1:] == dst[1:]:
        return nn.Conv2d(src[0], dst[0], 1)
    return nn.Sequential(nn.Flatten(), nn.Linear(numel(src), numel(dst)), nn.Unflatten(1, dst))


class ControlBranch(nn.Module):
    """y_c = Z_out(F_copy(x + Z_in(c), ...)): a trainable copy of the base network fed the
    control signal ``c`` through a zero-initialised projection, read out through another
    (Zhang et al. 2023, eq. (2)).  At initialisation the branch outputs exactly zero, so
    ``base(x) + branch(x, control=c)`` starts equal to the base network."""

    def __init__(self, base: ShapedNet, control_shape: tuple[int, ...]):
        super().__init__()
        if not isinstance(base, ShapedNet) or not base.in_shapes:
            raise ValueError(f"a control branch needs a gendsl network with inputs, got {base!r}")
        self.copy = copy.deepcopy(base)
        for p in self.copy.parameters():
            p.requires_grad_(True)
        self.zero_in = zero_module(_projection(tuple(control_shape), base.in_shapes[0]))
        self.zero_out = zero_module(_projection(base.out_shape, base.out_shape))

    def forward(
        self,
        x: Tensor,
        *inputs: Tensor,
        control: Tensor,
        t: Tensor | float | None = None,
        y: Tensor | None = None,
    ) -> Tensor:
        return self.zero_out(self.copy(x + self.zero_in(control), *inputs, t=t, y=y))


def copy_for_control(base: ShapedNet, control_shape: tuple[int, ...]) -> ControlBranch:
    """A ControlNet branch for ``base`` taking a control signal of per-sample ``control_shape``;
    the control enters by addition to the base's first input."""
    return ControlBranch(base, control_shape)
