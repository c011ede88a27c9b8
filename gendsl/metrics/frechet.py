"""The Fréchet distance between Gaussians, and FID computed from any features."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor

from gendsl.errors import UsageError

__all__ = ["fid", "fid_from_features", "frechet_distance", "trace_sqrt_product"]

ArrayLike = Tensor | np.ndarray
FeatureExtractor = Callable[[Tensor], Tensor]


def _numpy64(a: ArrayLike) -> np.ndarray:
    if isinstance(a, Tensor):
        a = a.detach().cpu().numpy()
    return np.asarray(a, dtype=np.float64)


def _psd_sqrt(cov: np.ndarray) -> np.ndarray:
    """Symmetric square root of a symmetric PSD matrix by eigen-decomposition."""
    eigenvalues, vectors = np.linalg.eigh((cov + cov.T) / 2)
    return (vectors * np.sqrt(np.clip(eigenvalues, 0.0, None))) @ vectors.T


def trace_sqrt_product(cov1: np.ndarray, cov2: np.ndarray) -> float:
    """``tr((Σ1 Σ2)^{1/2})`` for symmetric PSD ``Σ1, Σ2``.

    ``Σ1 Σ2`` is similar to the symmetric PSD ``Σ1^{1/2} Σ2 Σ1^{1/2}``, so its square root's trace
    is ``Σ_i √λ_i`` over that matrix's (real, non-negative) eigenvalues. Working with symmetric
    matrices avoids the complex round-off of ``scipy.linalg.sqrtm(Σ1 Σ2)``; eigenvalues that
    round-off makes slightly negative are clipped to 0.
    """
    root1 = _psd_sqrt(cov1)
    middle = root1 @ cov2 @ root1
    eigenvalues = np.linalg.eigvalsh((middle + middle.T) / 2)
    return float(np.sqrt(np.clip(eigenvalues, 0.0, None)).sum())


def frechet_distance(mu1: ArrayLike, cov1: ArrayLike, mu2: ArrayLike, cov2: ArrayLike) -> float:
    """Squared Fréchet (2-Wasserstein) distance between ``N(μ1, Σ1)`` and ``N(μ2, Σ2)``.

    ``d² = ‖μ1 − μ2‖² + tr(Σ1) + tr(Σ2) − 2 tr((Σ1 Σ2)^{1/2})`` (Dowson & Landau 1982; used as
    FID by Heusel et al. 2017, "GANs Trained by a Two Time-Scale Update Rule Converge to a Local
    Nash Equilibrium"). Like FID it is the squared distance; clipped at 0 against round-off.
    """
    m1, m2 = _numpy64(mu1).reshape(-1), _numpy64(mu2).reshape(-1)
    c1, c2 = _numpy64(cov1), _numpy64(cov2)
    d = len(m1)
    if m2.shape != (d,) or c1.shape != (d, d) or c2.shape != (d, d):
        raise UsageError(
            f"expected means [d] and covariances [d, d], got {list(m1.shape)}, "
            f"{list(c1.shape)}, {list(m2.shape)}, {list(c2.shape)}"
        )
    mean_term = float(((m1 - m2) ** 2).sum())
    cov_term = float(np.trace(c1) + np.trace(c2)) - 2.0 * trace_sqrt_product(c1, c2)
    return max(mean_term + cov_term, 0.0)


def fid_from_features(f1: ArrayLike, f2: ArrayLike) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets ``[n, d]`` and ``[m, d]``.

    Means and unbiased covariances of each set go into :func:`frechet_distance` (Heusel et al.
    2017). The value depends on the feature extractor and shrinks with the sample sizes' bias, so
    compare numbers only for the same extractor and sizes.
    """
    a, b = _numpy64(f1), _numpy64(f2)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1] or min(len(a), len(b)) < 2:
        raise UsageError(
            f"expected two feature sets [n, d] with n >= 2, got {list(a.shape)} and "
            f"{list(b.shape)}"
        )
    cov_a, cov_b = np.cov(a, rowvar=False, ddof=1), np.cov(b, rowvar=False, ddof=1)
    return frechet_distance(a.mean(0), np.atleast_2d(cov_a), b.mean(0), np.atleast_2d(cov_b))


@torch.no_grad()
def fid(
    real: Tensor,
    fake: Tensor,
    *,
    feature_extractor: FeatureExtractor,
    batch_size: int = 512,
) -> float:
    """:func:`fid_from_features` of ``feature_extractor`` applied to both sets in batches.

    Any extractor works (a digits classifier's features, Inception weights loaded from a local
    file, ...); numbers are comparable only between runs that use the same extractor.
    """

    def features(x: Tensor) -> Tensor:
        return torch.cat(
            [feature_extractor(x[i : i + batch_size]) for i in range(0, len(x), batch_size)]
        )

    return fid_from_features(features(real), features(fake))
