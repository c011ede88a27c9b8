"""Sample-based distances between distributions: W2, sliced W2, MMD, precision and recall.

Every function takes two sample sets ``[n, ...]`` and ``[m, ...]`` (tensors or numpy arrays;
samples are flattened to vectors) and returns a Python float.
"""

from __future__ import annotations

import math

import numpy as np
import ot
import torch
from torch import Tensor

from gendsl.errors import UsageError

__all__ = ["median_bandwidth", "mmd", "precision_recall", "sliced_w2", "w1", "w2", "w2_squared_1d"]

ArrayLike = Tensor | np.ndarray

_CHUNK = 1024


def _as_tensor(x: ArrayLike, like: Tensor | None = None) -> Tensor:
    """Samples as a 2-D float tensor ``[n, D]`` (on ``like``'s device and dtype if given)."""
    t = torch.as_tensor(x)
    if t.ndim < 1 or t.shape[0] == 0:
        raise UsageError(f"expected a non-empty batch of samples, got shape {list(t.shape)}")
    t = t.reshape(t.shape[0], -1)
    if like is not None:
        return t.to(device=like.device, dtype=like.dtype)
    return t if t.is_floating_point() else t.float()


def _pair(x: ArrayLike, y: ArrayLike) -> tuple[Tensor, Tensor]:
    tx = _as_tensor(x)
    ty = _as_tensor(y, like=tx)
    if tx.shape[1] != ty.shape[1]:
        raise UsageError(f"samples differ in size: {tx.shape[1]} vs {ty.shape[1]} values each")
    return tx, ty


def w2(x: ArrayLike, y: ArrayLike) -> float:
    """Exact 2-Wasserstein distance between the empirical measures of ``x`` and ``y``.

    ``W2 = (min_{π ∈ Π(a, b)} Σ_ij π_ij ‖x_i − y_j‖²)^{1/2}`` with uniform weights
    ``a = 1/n``, ``b = 1/m``; the transport problem is solved exactly by POT's network simplex
    ``ot.emd2`` (Bonneel et al. 2011; Flamary et al. 2021, "POT: Python Optimal Transport").
    Returns W2, not W2²; cost and memory grow as ``n m``, so keep ``n, m`` to a few thousand.
    """
    return math.sqrt(max(_emd2(x, y, power=2), 0.0))


def w1(x: ArrayLike, y: ArrayLike) -> float:
    """Exact 1-Wasserstein distance between the empirical measures of ``x`` and ``y``.

    ``W1 = min_{π ∈ Π(a, b)} Σ_ij π_ij ‖x_i − y_j‖`` (Euclidean cost, not squared), uniform
    weights, solved exactly by POT's ``ot.emd2`` as for :func:`w2`; by the
    Kantorovich–Rubinstein duality it equals ``sup_{‖f‖_L ≤ 1} E_x f − E_y f`` (Villani 2009,
    "Optimal Transport", Remark 6.5), the quantity a WGAN critic estimates.
    """
    return _emd2(x, y, power=1)


def _emd2(x: ArrayLike, y: ArrayLike, *, power: int) -> float:
    """``min_π Σ_ij π_ij ‖x_i − y_j‖^power`` with uniform weights, by POT's network simplex."""
    tx, ty = _pair(x, y)
    cost = _distances(tx.detach().cpu().double(), ty.detach().cpu().double()) ** power
    n, m = cost.shape
    weights_a, weights_b = np.full(n, 1.0 / n), np.full(m, 1.0 / m)
    return float(ot.emd2(weights_a, weights_b, cost.numpy(), numItermax=10_000_000))


def w2_squared_1d(u: Tensor, v: Tensor) -> Tensor:
    """Exact ``W2²`` between 1-D empirical measures, row by row: ``u [P, n]``, ``v [P, m]``.

    ``W2² = ∫_0^1 (F_u^{-1}(q) − F_v^{-1}(q))² dq``: both quantile functions are step functions
    with steps at ``i/n`` and ``j/m``, so the integral is a finite sum over the merged steps
    (Villani 2009, "Optimal Transport", Remark 2.30).
    """
    n, m = u.shape[1], v.shape[1]
    steps = (
        torch.cat(
            [torch.arange(1, n + 1, dtype=u.dtype) / n, torch.arange(1, m + 1, dtype=u.dtype) / m]
        )
        .sort()
        .values.to(u.device)
    )
    widths = torch.diff(steps, prepend=steps.new_zeros(1))
    middle = steps - widths / 2
    index_u = (middle * n).long().clamp(max=n - 1)
    index_v = (middle * m).long().clamp(max=m - 1)
    u_sorted, v_sorted = u.sort(dim=1).values, v.sort(dim=1).values
    return ((u_sorted[:, index_u] - v_sorted[:, index_v]) ** 2 * widths).sum(dim=1)


@torch.no_grad()
def sliced_w2(
    x: ArrayLike,
    y: ArrayLike,
    *,
    projections: int = 128,
    generator: torch.Generator | None = None,
) -> float:
    """Sliced 2-Wasserstein distance, Monte Carlo over ``projections`` random directions.

    ``SW2 = (E_{θ ~ U(S^{D-1})} W2²(θᵀx, θᵀy))^{1/2}`` (Rabin et al. 2011, "Wasserstein
    Barycenter and its Application to Texture Mixing"; Bonneel et al. 2015), each 1-D ``W2²``
    exact (:func:`w2_squared_1d`). Directions are normalised Gaussians drawn from ``generator``.
    """
    if projections < 1:
        raise UsageError(f"projections must be >= 1, got {projections}")
    tx, ty = _pair(x, y)
    device = generator.device if generator is not None else tx.device
    theta = torch.randn(tx.shape[1], projections, generator=generator, device=device)
    theta = (theta / theta.norm(dim=0, keepdim=True)).to(device=tx.device, dtype=tx.dtype)
    return math.sqrt(float(w2_squared_1d((tx @ theta).T, (ty @ theta).T).mean()))


def _distances(a: Tensor, b: Tensor) -> Tensor:
    """Euclidean distances ``‖a_i − b_j‖`` from differences, so ``‖a_i − a_i‖`` is exactly 0."""
    return torch.cdist(a, b, compute_mode="donot_use_mm_for_euclid_dist")


def median_bandwidth(x: Tensor, y: Tensor) -> float:
    """The median heuristic ``σ = median{‖z_i − z_j‖ : i < j}`` over the pooled sample ``z``.

    (Gretton et al. 2012, "A Kernel Two-Sample Test", Sec. 8.)
    """
    z = torch.cat([x, y])
    i, j = torch.triu_indices(len(z), len(z), offset=1, device=z.device)
    return float(_distances(z, z)[i, j].median())


@torch.no_grad()
def mmd(x: ArrayLike, y: ArrayLike, *, bandwidth: float | str = "median") -> float:
    """Unbiased estimate of the squared maximum mean discrepancy with an RBF kernel.

    ``MMD²_u = 1/(n(n−1)) Σ_{i≠j} k(x_i, x_j) + 1/(m(m−1)) Σ_{i≠j} k(y_i, y_j)
    − 2/(nm) Σ_{i,j} k(x_i, y_j)`` with ``k(a, b) = exp(−‖a − b‖² / (2σ²))`` (Gretton et al.
    2012, "A Kernel Two-Sample Test", Lemma 6). ``bandwidth="median"`` sets ``σ`` by the median
    heuristic (:func:`median_bandwidth`). Being unbiased, the estimate can be slightly negative
    when the distributions agree; it returns MMD², not its square root.
    """
    tx, ty = _pair(x, y)
    n, m = len(tx), len(ty)
    if n < 2 or m < 2:
        raise UsageError(f"mmd needs at least 2 samples on each side, got {n} and {m}")
    if bandwidth == "median":
        sigma = median_bandwidth(tx, ty)
    elif isinstance(bandwidth, str) or not bandwidth > 0:
        raise UsageError(f"bandwidth must be 'median' or a number > 0, got {bandwidth!r}")
    else:
        sigma = float(bandwidth)
    scale = 2.0 * max(sigma, 1e-12) ** 2
    k_xx = torch.exp(-_distances(tx, tx).square() / scale)
    k_yy = torch.exp(-_distances(ty, ty).square() / scale)
    k_xy = torch.exp(-_distances(tx, ty).square() / scale)
    term_xx = (k_xx.sum() - k_xx.diagonal().sum()) / (n * (n - 1))
    term_yy = (k_yy.sum() - k_yy.diagonal().sum()) / (m * (m - 1))
    return float(term_xx + term_yy - 2.0 * k_xy.mean())


def _knn_radii(points: Tensor, k: int) -> Tensor:
    """Distance from each point to its ``k``-th nearest other point."""
    radii = [
        _distances(points[i : i + _CHUNK], points).kthvalue(k + 1, dim=1).values
        for i in range(0, len(points), _CHUNK)
    ]
    return torch.cat(radii)


def _coverage(queries: Tensor, centres: Tensor, radii: Tensor) -> float:
    """Share of ``queries`` inside at least one ball ``B(centres_j, radii_j)``."""
    inside = [
        (_distances(queries[i : i + _CHUNK], centres) <= radii).any(dim=1)
        for i in range(0, len(queries), _CHUNK)
    ]
    return float(torch.cat(inside).float().mean())


@torch.no_grad()
def precision_recall(real: ArrayLike, fake: ArrayLike, *, k: int = 3) -> tuple[float, float]:
    """Improved precision and recall with k-NN manifolds (Kynkäänniemi et al. 2019).

    The real manifold is ``∪_r B(r, NN_k(r))``, each real sample's ball reaching its ``k``-th
    nearest real neighbour, and the fake manifold likewise. Precision is the share of fake samples
    inside the real manifold, recall the share of real samples inside the fake manifold.
    """
    tr, tf = _pair(real, fake)
    if not 1 <= k < min(len(tr), len(tf)):
        raise UsageError(f"k must be >= 1 and below both sample counts, got {k}")
    precision = _coverage(tf, tr, _knn_radii(tr, k))
    recall = _coverage(tr, tf, _knn_radii(tf, k))
    return precision, recall
