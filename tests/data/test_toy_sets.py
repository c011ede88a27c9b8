"""The bundled 2-D sets: shape, seeding, scale, and each set's geometry."""

from __future__ import annotations

import numpy as np
import pytest

from gendsl.data import toy

N = 4000


@pytest.mark.parametrize("name", toy.NAMES)
def test_shape_dtype_seeding_and_scale(name: str) -> None:
    x = toy.make(name, N, seed=7)
    assert x.shape == (N, 2) and x.dtype == np.float32
    assert np.isfinite(x).all()
    np.testing.assert_array_equal(x, toy.make(name, N, seed=7))
    assert not np.allclose(x, toy.make(name, N, seed=8))
    rms = float(np.sqrt((x.astype(np.float64) ** 2).mean()))
    assert 0.7 < rms < 1.25, rms
    assert toy.make(name, 0, seed=0).shape == (0, 2)
    assert toy.make(name, 1, seed=0).shape == (1, 2)


@pytest.mark.parametrize("name", toy.NAMES)
def test_labels_cover_every_part(name: str) -> None:
    _, y = toy.make_labelled(name, N, seed=1)
    if name not in toy.LABELLED:
        assert y is None
        return
    assert y.shape == (N,) and y.dtype == np.int64
    counts = np.bincount(y, minlength=toy.LABELLED[name])
    assert len(counts) == toy.LABELLED[name]
    expected = N / len(counts)
    assert np.all(np.abs(counts - expected) < 5 * np.sqrt(expected))


def _radius(x: np.ndarray) -> np.ndarray:
    return np.linalg.norm(x.astype(np.float64), axis=1)


def test_eight_gaussians_sit_on_their_centres() -> None:
    x, y = toy.make_labelled("8gaussians", N, seed=0)
    angle = y * np.pi / 4
    centres = np.sqrt(2) * np.stack([np.cos(angle), np.sin(angle)], axis=1)
    offsets = x - centres
    np.testing.assert_allclose(offsets.std(axis=0), [0.1, 0.1], rtol=0.05)
    np.testing.assert_allclose(offsets.mean(axis=0), [0, 0], atol=0.01)


def test_twenty_five_gaussians_grid() -> None:
    x, y = toy.make_labelled("25gaussians", N, seed=0)
    centres = 0.7 * (np.stack([y // 5, y % 5], axis=1) - 2)
    assert np.abs(x - centres).max() < 6 * 0.05
    np.testing.assert_allclose((x - centres).std(axis=0), [0.05, 0.05], rtol=0.05)


def test_rings_and_circles_radii() -> None:
    x, y = toy.make_labelled("rings", N, seed=0)
    np.testing.assert_allclose(
        [_radius(x[y == k]).mean() for k in range(4)], [0.4, 0.8, 1.2, 1.6], atol=0.01
    )
    x, y = toy.make_labelled("circles", N, seed=0)
    np.testing.assert_allclose(
        [_radius(x[y == k]).mean() for k in range(2)], [1.5, 0.75], atol=0.01
    )


def test_checkerboard_occupies_black_squares_only() -> None:
    x = toy.make("checkerboard", N, seed=0)
    assert x.min() >= -2 and x.max() <= 2
    parity = (np.floor(x[:, 0]) + np.floor(x[:, 1])) % 2
    assert np.all(parity == 0)
    squares = np.unique(np.floor(x).astype(int), axis=0)
    assert len(squares) == 8


def test_moons_are_half_circles() -> None:
    x, y = toy.make_labelled("moons", N, seed=0)
    raw = x / 1.2 + np.array([0.5, 0.25])
    upper = raw[y == 0]
    lower = raw[y == 1] - np.array([1.0, 0.5])
    np.testing.assert_allclose(_radius(upper).mean(), 1.0, atol=0.02)
    np.testing.assert_allclose(_radius(lower).mean(), 1.0, atol=0.02)
    assert upper[:, 1].mean() > 0.5 and lower[:, 1].mean() < -0.5


def test_spirals_are_point_symmetric() -> None:
    x, y = toy.make_labelled("spirals", 20_000, seed=0)
    np.testing.assert_allclose(x[y == 0].mean(axis=0), -x[y == 1].mean(axis=0), atol=0.05)
    # the radius of arm 0 grows like s = 3π√u: mean radius ≈ E[s]/5 = 2π/5
    np.testing.assert_allclose(_radius(x).mean(), 2 * np.pi / 5, rtol=0.02)


def test_unknown_name_and_negative_size() -> None:
    with pytest.raises(ValueError, match="unknown toy set 'moon'"):
        toy.make("moon", 3, seed=0)
    with pytest.raises(ValueError, match="n must be >= 0, got -1"):
        toy.make("moons", -1, seed=0)


def test_swissroll_radius_follows_its_angle() -> None:
    x = toy.make("swissroll", N, seed=0).astype(np.float64) * 7
    t = _radius(x)  # ≈ t for t ~ U[1.5π, 4.5π], up to the 0.5 noise
    np.testing.assert_allclose(t.mean(), 3 * np.pi, rtol=0.02)
    assert t.min() > 1.5 * np.pi - 2 and t.max() < 4.5 * np.pi + 2
    # the point's direction is t mod 2π with t its radius: the wrapped difference is only noise
    # (about 0.4 rad on average; it would be π/2 if direction and radius were unrelated)
    residual = np.angle(np.exp(1j * (t - np.arctan2(x[:, 1], x[:, 0]))))
    assert np.mean(np.abs(residual)) < 0.6


def test_pinwheel_arm_directions() -> None:
    x, y = toy.make_labelled("pinwheel", N, seed=0)
    for k in range(5):
        arm = x[y == k].astype(np.float64)
        direction = np.angle(np.mean(arm[:, 0] + 1j * arm[:, 1]))
        # rotation 2πk/5 + 0.25 E[exp r] with r ~ N(0, 0.3²)
        expected = 2 * np.pi * k / 5 + 0.25 * np.exp(0.045)
        assert abs(np.angle(np.exp(1j * (direction - expected)))) < 0.05
        np.testing.assert_allclose(_radius(arm).mean(), 1.35, rtol=0.03)
