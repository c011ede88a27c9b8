"""The activation names of the network library: one table, read by the checker
(:mod:`gendsl.analysis.library`, without torch) and by the networks (:mod:`gendsl.nn.layers`)."""

from __future__ import annotations

__all__ = ["ACTIVATIONS"]

#: every name a network's ``activation = ...`` accepts
ACTIVATIONS: tuple[str, ...] = (
    "silu",
    "relu",
    "tanh",
    "gelu",
    "softplus",
    "elu",
    "leaky_relu",
    "sigmoid",
)
