"""W2, sliced W2, MMD and precision/recall against closed forms and hand-written formulas."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.linalg
import torch
from scipy.spatial.distance import pdist

from gendsl.errors import UsageError
from gendsl.metrics import mmd, precision_recall, sliced_w2, w2


def _bures_w2(mu1: np.ndarray, cov1: np.ndarray, mu2: np.ndarray, cov2: np.ndarray) -> float:
    """W2 between Gaussians: ‖μ1−μ2‖² + tr(Σ1 + Σ2 − 2 (Σ2^½ Σ1 Σ2^½)^½), via scipy sqrtm."""
    root2 = scipy.linalg.sqrtm(cov2).real
    cross = scipy.linalg.sqrtm(root2 @ cov1 @ root2).real
    return math.sqrt(np.sum((mu1 - mu2) ** 2) + np.trace(cov1 + cov2 - 2 * cross))


def test_w2_between_gaussian_samples_matches_bures_formula() -> None:
    rng = np.random.default_rng(0)
    mu1, mu2 = np.array([0.0, 0.0]), np.array([1.5, -1.0])
    rotation = np.array([[np.cos(0.7), -np.sin(0.7)], [np.sin(0.7), np.cos(0.7)]])
    cov1 = np.diag([1.0, 0.25])
    cov2 = rotation @ np.diag([2.0, 0.5]) @ rotation.T
    n = 1200
    x = rng.multivariate_normal(mu1, cov1, size=n)
    y = rng.multivariate_normal(mu2, cov2, size=n)
    expected = _bures_w2(mu1, cov1, mu2, cov2)
    assert w2(x, y) == pytest.approx(expected, rel=0.04)
    assert w2(torch.tensor(x), torch.tensor(y)) == pytest.approx(w2(x, y), rel=1e-9)


def test_w2_self_shift_and_unequal_sizes() -> None:
    x = torch.randn(200, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    shift = torch.tensor([0.3, -1.2, 2.0], dtype=torch.float64)
    assert w2(x, x) == 0.0
    assert w2(x, x + shift) == pytest.approx(float(shift.norm()), rel=1e-9)
    # one atom at 0 against atoms 1 and 3 of weight ½: W2² = (1 + 9) / 2
    assert w2(np.array([[0.0]]), np.array([[1.0], [3.0]])) == pytest.approx(math.sqrt(5.0))
    with pytest.raises(UsageError, match="samples differ in size: 3 vs 2"):
        w2(x, x[:, :2])


def test_sliced_w2_is_exact_in_one_dimension_with_unequal_sizes() -> None:
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(37, 1)), rng.exponential(size=(23, 1))
    assert sliced_w2(x, y, projections=3) == pytest.approx(w2(x, y), rel=1e-9)


def test_sliced_w2_of_a_shift_and_bound_by_w2() -> None:
    g = torch.Generator().manual_seed(3)
    x = torch.randn(300, 4, generator=g, dtype=torch.float64)
    shift = torch.tensor([1.0, -2.0, 0.5, 3.0], dtype=torch.float64)
    # each projection moves by θ·s, so SW2² = E[(θ·s)²] = ‖s‖² / D
    value = sliced_w2(x, x + shift, projections=4000, generator=torch.Generator().manual_seed(0))
    assert value == pytest.approx(float(shift.norm()) / 2.0, rel=0.03)
    y = torch.randn(250, 4, generator=g, dtype=torch.float64) * 1.5
    assert sliced_w2(x, y, projections=64) <= w2(x, y)
    same = [sliced_w2(x, y, generator=torch.Generator().manual_seed(5)) for _ in range(2)]
    assert same[0] == same[1]


def _mmd_loops(x: np.ndarray, y: np.ndarray, sigma: float) -> float:
    def k(a: np.ndarray, b: np.ndarray) -> float:
        return math.exp(-np.sum((a - b) ** 2) / (2 * sigma**2))

    n, m = len(x), len(y)
    xx = sum(k(x[i], x[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    xy = sum(k(x[i], y[j]) for i in range(n) for j in range(m)) / (n * m)
    return xx + yy - 2 * xy


def test_mmd_matches_hand_written_estimator() -> None:
    rng = np.random.default_rng(4)
    x, y = rng.normal(size=(20, 3)), rng.normal(0.5, 1.0, size=(15, 3))
    assert mmd(x, y, bandwidth=0.8) == pytest.approx(_mmd_loops(x, y, 0.8), rel=1e-9)
    median = float(np.median(pdist(np.concatenate([x, y]))))
    assert mmd(x, y) == pytest.approx(_mmd_loops(x, y, median), rel=1e-9)


def test_mmd_near_zero_for_same_distribution_and_positive_otherwise() -> None:
    g = torch.Generator().manual_seed(6)
    same = [
        mmd(torch.randn(60, 2, generator=g), torch.randn(60, 2, generator=g)) for _ in range(40)
    ]
    # unbiased: the average over replications is zero up to its standard error
    assert abs(np.mean(same)) < 3 * np.std(same) / math.sqrt(len(same)) + 1e-4
    x, y = torch.randn(300, 2, generator=g), torch.randn(300, 2, generator=g)
    assert abs(mmd(x, y)) < 0.01
    assert mmd(x, y + 1.0) > 0.1
    with pytest.raises(UsageError, match="bandwidth must be 'median' or a number > 0, got -1"):
        mmd(x, y, bandwidth=-1)


def test_precision_recall_hand_example() -> None:
    real = np.array([[0.0], [1.0], [2.0], [3.0]])
    fake = np.array([[0.5], [2.9], [10.0], [4.1]])
    # real radii (k=1) are all 1: 0.5 and 2.9 are inside, 10 and 4.1 (1.1 from 3) are not.
    # fake radii: 0.5→2.4, 2.9→1.2, 4.1→1.2, 10→5.9 cover every real point.
    assert precision_recall(real, fake, k=1) == (0.5, 1.0)


def test_precision_recall_same_disjoint_and_half() -> None:
    g = torch.Generator().manual_seed(7)
    real = torch.randn(400, 2, generator=g)
    assert precision_recall(real, real, k=3) == (1.0, 1.0)
    assert precision_recall(real, real + 20.0, k=3) == (0.0, 0.0)
    half = torch.cat([torch.randn(200, 2, generator=g), torch.randn(200, 2, generator=g) + 20])
    precision, recall = precision_recall(real, half, k=3)
    assert 0.45 < precision < 0.55 and recall > 0.8
    with pytest.raises(UsageError, match="k must be >= 1 and below both sample counts, got 400"):
        precision_recall(real, half, k=400)
