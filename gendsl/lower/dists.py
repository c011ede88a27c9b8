"""The distribution table as the back ends use it: the facts live in :mod:`gendsl.distributions`
(read by the checker too), the torch constructors and :class:`Density` in
:mod:`gendsl.objectives.densities`; this module keeps their names importable from ``lower``."""

from __future__ import annotations

from gendsl.distributions import DISTRIBUTIONS, DistInfo
from gendsl.distributions import PACKED_SCALE_MIN as PACKED_EPS
from gendsl.objectives.densities import (
    Density,
    base_of,
    bernoulli_logits_log_prob,
    broadcast_shape,
    draw,
    kl_normal_normal,
    kl_normal_std_normal,
    make_dist,
    normal_log_prob,
    unpack_params,
    unpacker,
)

__all__ = [
    "DISTRIBUTIONS",
    "PACKED_EPS",
    "Density",
    "DistInfo",
    "base_of",
    "bernoulli_logits_log_prob",
    "broadcast_shape",
    "draw",
    "kl_normal_normal",
    "kl_normal_std_normal",
    "make_dist",
    "normal_log_prob",
    "unpack_params",
    "unpacker",
]
