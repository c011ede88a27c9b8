"""Small building blocks shared by the networks: activations, spectral norm, zero init."""

from __future__ import annotations

import math
from collections.abc import Sequence

from torch import nn
from torch.nn.utils.parametrizations import spectral_norm as _spectral_norm

from gendsl.activations import ACTIVATIONS

__all__ = [
    "ACTIVATIONS",
    "activation",
    "check_positive_ints",
    "count_parameters",
    "group_norm",
    "maybe_spectral_norm",
    "numel",
    "zero_module",
]


def activation(name: str) -> nn.Module:
    """The activation named ``name``, one of the library's
    :data:`~gendsl.activations.ACTIVATIONS` (the table the checker reads too);
    ``leaky_relu`` uses slope 0.2 (Radford et al. 2016)."""
    table = {
        "silu": nn.SiLU,
        "relu": nn.ReLU,
        "tanh": nn.Tanh,
        "leaky_relu": lambda: nn.LeakyReLU(0.2),
        "gelu": nn.GELU,
        "elu": nn.ELU,
        "softplus": nn.Softplus,
        "sigmoid": nn.Sigmoid,
    }
    if name not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {', '.join(ACTIVATIONS)}, got {name!r}")
    return table[name]()


def maybe_spectral_norm(layer: nn.Module, enabled: bool) -> nn.Module:
    """Wrap ``layer``'s weight in spectral normalisation W / σ(W) (Miyato et al. 2018).

    σ(W) is estimated by one power iteration per training-mode forward pass.
    """
    return _spectral_norm(layer) if enabled else layer


def zero_module(module: nn.Module) -> nn.Module:
    """Set every parameter of ``module`` to zero and return it (ControlNet's zero convolution,
    Zhang et al. 2023)."""
    for p in module.parameters():
        nn.init.zeros_(p)
    return module


def count_parameters(module: nn.Module, *, trainable_only: bool = True) -> int:
    """The number of scalar parameters in ``module`` (only those with gradients by default)."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)


def numel(shape: Sequence[int]) -> int:
    """The number of entries in one sample of ``shape``."""
    return math.prod(shape)


def group_norm(channels: int, groups: int) -> nn.GroupNorm:
    """GroupNorm with the largest group count dividing ``channels`` that is <= ``groups``."""
    return nn.GroupNorm(math.gcd(groups, channels), channels)


def check_positive_ints(name: str, values: object, *, allow_empty: bool = False) -> list[int]:
    """``values`` as a list of positive ints, or a ``ValueError`` quoting it."""
    if isinstance(values, int) and not isinstance(values, bool):
        values = [values]
    ok = isinstance(values, (list, tuple)) and all(
        isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in values
    )
    if not ok or (not values and not allow_empty):
        raise ValueError(f"{name} must be a list of positive integers, got {values!r}")
    return list(values)
