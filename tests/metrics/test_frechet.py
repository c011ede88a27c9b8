"""The Fréchet distance against closed forms and an independent scipy.linalg.sqrtm formula."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
import torch

from gendsl.errors import UsageError
from gendsl.metrics import fid, fid_from_features, frechet_distance


def _random_spd(rng: np.random.Generator, d: int) -> np.ndarray:
    a = rng.normal(size=(d, d))
    return a @ a.T + 0.1 * np.eye(d)


def test_diagonal_covariances_closed_form() -> None:
    mu1, mu2 = np.array([0.0, 1.0, -2.0]), np.array([1.0, 1.0, 0.5])
    a, b = np.array([1.0, 4.0, 0.25]), np.array([9.0, 1.0, 0.25])
    # commuting covariances: tr((Σ1Σ2)^½) = Σ √(a_i b_i), so d² = ‖Δμ‖² + Σ (√a_i − √b_i)²
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)
    assert frechet_distance(mu1, np.diag(a), mu2, np.diag(b)) == pytest.approx(expected)
    assert expected == pytest.approx(7.25 + 4 + 1)


def test_general_covariances_match_sqrtm_formula() -> None:
    rng = np.random.default_rng(0)
    for d in (1, 4, 12):
        mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
        cov1, cov2 = _random_spd(rng, d), _random_spd(rng, d)
        covmean = scipy.linalg.sqrtm(cov1 @ cov2).real
        expected = np.sum((mu1 - mu2) ** 2) + np.trace(cov1 + cov2 - 2 * covmean)
        value = frechet_distance(torch.tensor(mu1), torch.tensor(cov1), mu2, cov2)
        assert value == pytest.approx(expected, rel=1e-8)
        assert frechet_distance(mu2, cov2, mu1, cov1) == pytest.approx(value, rel=1e-8)


def test_features_identical_shifted_and_rank_deficient() -> None:
    rng = np.random.default_rng(1)
    f = rng.normal(size=(200, 5))
    assert fid_from_features(f, f) == pytest.approx(0.0, abs=1e-9)
    shift = np.array([1.0, -1.0, 0.0, 2.0, 0.5])
    assert fid_from_features(f, f + shift) == pytest.approx(float(np.sum(shift**2)), rel=1e-8)
    # fewer samples than features: singular covariances still give a finite, exact answer
    few = rng.normal(size=(10, 50))
    assert fid_from_features(few, few) == pytest.approx(0.0, abs=1e-7)
    assert np.isfinite(fid_from_features(few, rng.normal(size=(12, 50))))
    with pytest.raises(UsageError, match=r"expected two feature sets \[n, d\] with n >= 2"):
        fid_from_features(f[:1], f)


def test_fid_from_large_gaussian_samples_approaches_closed_form() -> None:
    rng = np.random.default_rng(2)
    cov1, cov2 = np.diag([1.0, 2.0]), np.diag([0.5, 0.5])
    x = rng.multivariate_normal([0, 0], cov1, size=20_000)
    y = rng.multivariate_normal([1, 0], cov2, size=20_000)
    expected = 1 + (1 - np.sqrt(0.5)) ** 2 + (np.sqrt(2) - np.sqrt(0.5)) ** 2
    assert fid_from_features(x, y) == pytest.approx(expected, rel=0.03)


def test_fid_applies_the_extractor_in_batches() -> None:
    g = torch.Generator().manual_seed(3)
    real, fake = torch.randn(100, 4, generator=g), torch.randn(70, 4, generator=g) + 1
    weight = torch.randn(4, 3, generator=g)
    calls: list[int] = []

    def extractor(x: torch.Tensor) -> torch.Tensor:
        calls.append(len(x))
        return torch.tanh(x @ weight)

    value = fid(real, fake, feature_extractor=extractor, batch_size=32)
    assert calls == [32, 32, 32, 4, 32, 32, 6]
    assert value == pytest.approx(fid_from_features(extractor(real), extractor(fake)), rel=1e-6)
