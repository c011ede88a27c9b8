"""Conversions between what a network may predict for x_t = a_t x0 + s_t eps: the noise
``eps``, the clean data ``x0``, the score ∇log p_t(x_t) and the velocity ``v``.

``a_t`` and ``s_t`` are scalars or per-sample ``[B]`` tensors; they are broadcast against the
data with :func:`~gendsl.processes.base.expand_like`.
"""

from __future__ import annotations

from torch import Tensor

from gendsl.processes.base import expand_like

__all__ = [
    "eps_from_score",
    "eps_from_v",
    "eps_from_x0",
    "score_from_eps",
    "score_from_x0",
    "v_from_eps_x0",
    "x0_from_eps",
    "x0_from_score",
    "x0_from_v",
]


def eps_from_score(score: Tensor, s_t: Tensor) -> Tensor:
    """eps = -s_t ∇log p_t (Song et al. 2021; Ho et al. 2020, eq. 11 up to scale)."""
    return -expand_like(s_t, score) * score


def score_from_eps(eps: Tensor, s_t: Tensor) -> Tensor:
    """∇log p_t = -eps / s_t."""
    return -eps / expand_like(s_t, eps)


def x0_from_eps(x_t: Tensor, eps: Tensor, a_t: Tensor, s_t: Tensor) -> Tensor:
    """x0 = (x_t - s_t eps) / a_t."""
    return (x_t - expand_like(s_t, x_t) * eps) / expand_like(a_t, x_t)


def eps_from_x0(x_t: Tensor, x0: Tensor, a_t: Tensor, s_t: Tensor) -> Tensor:
    """eps = (x_t - a_t x0) / s_t."""
    return (x_t - expand_like(a_t, x_t) * x0) / expand_like(s_t, x_t)


def score_from_x0(x_t: Tensor, x0: Tensor, a_t: Tensor, s_t: Tensor) -> Tensor:
    """∇log p_t = -(x_t - a_t x0) / s_t² (with x0 = E[x0 | x_t], Tweedie's formula; Efron 2011)."""
    return -(x_t - expand_like(a_t, x_t) * x0) / expand_like(s_t, x_t) ** 2


def x0_from_score(x_t: Tensor, score: Tensor, a_t: Tensor, s_t: Tensor) -> Tensor:
    """Tweedie's formula E[x0 | x_t] = (x_t + s_t² ∇log p_t(x_t)) / a_t (Efron 2011)."""
    return (x_t + expand_like(s_t, x_t) ** 2 * score) / expand_like(a_t, x_t)


def v_from_eps_x0(eps: Tensor, x0: Tensor, a_t: Tensor, s_t: Tensor) -> Tensor:
    """v = a_t eps - s_t x0 (Salimans & Ho 2022, "Progressive Distillation", appendix D)."""
    return expand_like(a_t, eps) * eps - expand_like(s_t, eps) * x0


def x0_from_v(x_t: Tensor, v: Tensor, a_t: Tensor, s_t: Tensor) -> Tensor:
    """x0 = (a_t x_t - s_t v) / (a_t² + s_t²): invert [x_t, v] = [[a, s], [-s, a]] [x0, eps]."""
    a, s = expand_like(a_t, x_t), expand_like(s_t, x_t)
    return (a * x_t - s * v) / (a**2 + s**2)


def eps_from_v(x_t: Tensor, v: Tensor, a_t: Tensor, s_t: Tensor) -> Tensor:
    """eps = (s_t x_t + a_t v) / (a_t² + s_t²), the other row of the same inverse."""
    a, s = expand_like(a_t, x_t), expand_like(s_t, x_t)
    return (s * x_t + a * v) / (a**2 + s**2)
