"""Mode coverage and high-quality fraction on hand-built sample sets (exact counts)."""

from __future__ import annotations

import numpy as np
import pytest

from gendsl.data import toy
from gendsl.errors import UsageError
from gendsl.metrics.modes import mode_coverage


@pytest.mark.parametrize("name", toy.MIXTURES)
def test_every_mode_hit_counts_every_mode(name: str) -> None:
    centres, std = toy.mixture_modes(name)
    samples = np.repeat(centres, 3, axis=0) + 2.9 * std * np.array([0.6, 0.8])  # 2.9σ away
    result = mode_coverage(samples, centres, std)
    assert result.counts == (3,) * len(centres)
    assert result.covered == len(centres) and result.high_quality == 1.0


@pytest.mark.parametrize("name", toy.MIXTURES)
def test_collapse_to_one_mode(name: str) -> None:
    centres, std = toy.mixture_modes(name)
    samples = np.tile(centres[5], (40, 1))
    result = mode_coverage(samples, centres, std)
    assert result.covered == 1 and result.counts[5] == 40 and result.high_quality == 1.0


def test_off_mode_samples_are_low_quality_and_cover_nothing() -> None:
    centres, std = toy.mixture_modes("25gaussians")
    # 3 on mode 0, 1 at 3.1σ from mode 1 (its nearest), 6 halfway between modes 0 and 1
    samples = np.concatenate(
        [
            np.tile(centres[0], (3, 1)),
            centres[1:2] + np.array([[3.1 * std, 0.0]]),
            np.tile((centres[0] + centres[1]) / 2, (6, 1)),
        ]
    )
    result = mode_coverage(samples, centres, std)
    assert result.counts[0] == 3 and sum(result.counts) == 3
    assert result.covered == 1
    assert result.high_quality == pytest.approx(0.3, abs=1e-15)
    assert mode_coverage(samples, centres, std, threshold=3.2).covered == 2
    assert mode_coverage(samples, centres, std, min_count=4).covered == 0


def test_data_of_the_set_covers_all_its_modes() -> None:
    """The set's own samples: 25 modes, high quality ≈ P(χ²₂ < 9) = 1 − e^{−4.5} ≈ 0.9889."""
    x = toy.make("25gaussians", 20000, seed=3)
    centres, std = toy.mixture_modes("25gaussians")
    result = mode_coverage(x, centres, std)
    assert result.covered == 25
    expected = 1 - np.exp(-4.5)  # binomial sd ≈ 7.4e-4 at n = 20000: 5 sd
    assert abs(result.high_quality - expected) < 5 * np.sqrt(expected * (1 - expected) / 20000)


def test_bad_shapes_are_usage_errors() -> None:
    centres, std = toy.mixture_modes("8gaussians")
    with pytest.raises(UsageError, match=r"samples \[n, D\] and centres \[K, D\], got \[4, 3\]"):
        mode_coverage(np.zeros((4, 3)), centres, std)
    with pytest.raises(ValueError, match="'moons' is not a Gaussian mixture"):
        toy.mixture_modes("moons")
