"""Bundled two-dimensional toy distributions, generated with numpy.

Every set is a function of ``(n, rng)`` that returns points ``[n, 2]`` and, where the set is a
union of labelled parts (moons, rings, mixture components, spiral arms), the part index of each
point. The shapes follow the toy sets popularised by FFJORD (Grathwohl et al. 2019,
"FFJORD: Free-form Continuous Dynamics for Scalable Reversible Generative Models") and by
VEEGAN / WGAN-GP for the Gaussian mixtures (Srivastava et al. 2017; Gulrajani et al. 2017), but
each is rescaled so that its root-mean-square coordinate is close to 1 (the ``rms`` listed with
each set, measured on 10⁶ points), which suits networks initialised for unit-scale inputs.
Samples are drawn at random (not on a grid), so any ``n`` gives i.i.d. points.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

__all__ = ["LABELLED", "MIXTURES", "NAMES", "make", "make_labelled", "mixture_modes"]

_Generator = Callable[[int, np.random.Generator], tuple[np.ndarray, np.ndarray | None]]


def _split(n: int, parts: int, rng: np.random.Generator) -> np.ndarray:
    """A uniformly random part index in ``0..parts-1`` for each of ``n`` points."""
    return rng.integers(0, parts, size=n)


def _moons(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Two interleaved half circles with noise 0.1, centred, scaled by 1.2 (rms ≈ 0.86).

    Upper moon ``(cos θ, sin θ)``, lower moon ``(1 - cos θ, 1/2 - sin θ)``, θ ~ U[0, π].
    """
    y = _split(n, 2, rng)
    theta = rng.uniform(0.0, np.pi, size=n)
    upper = np.stack([np.cos(theta), np.sin(theta)], axis=1)
    lower = np.stack([1.0 - np.cos(theta), 0.5 - np.sin(theta)], axis=1)
    x = np.where(y[:, None] == 0, upper, lower) + 0.1 * rng.standard_normal((n, 2))
    return 1.2 * (x - np.array([0.5, 0.25])), y


def _circles(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Concentric circles of radius 1.5 and 0.75 with noise 0.08 (rms ≈ 0.84)."""
    y = _split(n, 2, rng)
    theta = rng.uniform(0.0, 2.0 * np.pi, size=n)
    radius = np.where(y == 0, 1.5, 0.75)
    x = radius[:, None] * np.stack([np.cos(theta), np.sin(theta)], axis=1)
    return x + 0.08 * rng.standard_normal((n, 2)), y


def _eight_gaussians(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Eight Gaussians (std 0.1) centred on the circle of radius √2 at angles kπ/4 (rms ≈ 1.0)."""
    y = _split(n, 8, rng)
    return _ring_centres()[y] + _RING_STD * rng.standard_normal((n, 2)), y


_RING_STD = 0.1
_GRID_STD = 0.05


def _ring_centres() -> np.ndarray:
    """The eight means ``√2 (cos kπ/4, sin kπ/4)``, ``k = 0..7``, as ``[8, 2]``."""
    angle = np.arange(8) * (np.pi / 4.0)
    return np.sqrt(2.0) * np.stack([np.cos(angle), np.sin(angle)], axis=1)


def _grid_centres() -> np.ndarray:
    """The 25 means ``0.7 (i − 2, j − 2)``, row ``5 i + j``, as ``[25, 2]``."""
    k = np.arange(25)
    return 0.7 * (np.stack([k // 5, k % 5], axis=1) - 2.0)


def _twenty_five_gaussians(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A 5×5 grid of Gaussians (std 0.05) at ``{-1.4, -0.7, 0, 0.7, 1.4}²`` (rms ≈ 0.99).

    Label ``5 i + j`` is the component in row ``i`` (first coordinate) and column ``j``.
    """
    y = _split(n, 25, rng)
    return _grid_centres()[y] + _GRID_STD * rng.standard_normal((n, 2)), y


def _checkerboard(n: int, rng: np.random.Generator) -> tuple[np.ndarray, None]:
    """Uniform on the 8 "black" unit squares of a 4×4 board on ``[-2, 2]²`` (rms ≈ 1.15).

    A point ``(a, b)`` is on the board iff ``⌊a⌋ + ⌊b⌋`` is even.
    """
    a = rng.uniform(-2.0, 2.0, size=n)
    b = rng.uniform(0.0, 1.0, size=n) + 2.0 * rng.integers(-1, 1, size=n)
    b = b + (np.floor(a) % 2)
    return np.stack([a, b], axis=1), None


def _swissroll(n: int, rng: np.random.Generator) -> tuple[np.ndarray, None]:
    """The 2-D Swiss roll ``t (cos t, sin t)``, t ~ U[1.5π, 4.5π], noise 0.5, / 7 (rms ≈ 1.0)."""
    t = 1.5 * np.pi * (1.0 + 2.0 * rng.uniform(size=n))
    x = t[:, None] * np.stack([np.cos(t), np.sin(t)], axis=1)
    return (x + 0.5 * rng.standard_normal((n, 2))) / 7.0, None


def _pinwheel(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Five curved arms (radial std 0.3, tangential 0.1, rate 0.25), times 1.35 (rms ≈ 1.0).

    A point of arm ``k`` is ``(1 + r, s)`` with ``r ~ N(0, 0.3²)``, ``s ~ N(0, 0.1²)``, rotated
    by ``2πk/5 + 0.25 exp(r)`` (Johnson et al. 2016, "Composing graphical models with neural
    networks"; the FFJORD toy set).
    """
    y = _split(n, 5, rng)
    r = 0.3 * rng.standard_normal(n)
    s = 0.1 * rng.standard_normal(n)
    angle = 2.0 * np.pi * y / 5.0 + 0.25 * np.exp(r)
    cos, sin = np.cos(angle), np.sin(angle)
    x = np.stack([cos * (1.0 + r) - sin * s, sin * (1.0 + r) + cos * s], axis=1)
    return 1.35 * x, y


def _spirals(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Two interleaved spirals (FFJORD "2spirals"), noise 0.1, over 5 (rms ≈ 0.93).

    Arm 0 is ``(-s cos s, s sin s)`` with ``s = 3π √u``, u ~ U[0, 1]; arm 1 is its negative.
    """
    y = _split(n, 2, rng)
    s = 3.0 * np.pi * np.sqrt(rng.uniform(size=n))
    arm = np.stack([-s * np.cos(s), s * np.sin(s)], axis=1)
    sign = np.where(y == 0, 1.0, -1.0)[:, None]
    return (sign * arm + 0.1 * rng.standard_normal((n, 2))) / 5.0, y


def _rings(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Four concentric rings of radius 0.4, 0.8, 1.2, 1.6 with noise 0.03 (rms ≈ 0.78).

    Ring ``k`` (label) has radius ``0.4 (k + 1)``; each ring holds a quarter of the points.
    """
    y = _split(n, 4, rng)
    theta = rng.uniform(0.0, 2.0 * np.pi, size=n)
    radius = 0.4 * (y + 1.0)
    x = radius[:, None] * np.stack([np.cos(theta), np.sin(theta)], axis=1)
    return x + 0.03 * rng.standard_normal((n, 2)), y


_SETS: dict[str, _Generator] = {
    "moons": _moons,
    "circles": _circles,
    "8gaussians": _eight_gaussians,
    "25gaussians": _twenty_five_gaussians,
    "checkerboard": _checkerboard,
    "swissroll": _swissroll,
    "pinwheel": _pinwheel,
    "spirals": _spirals,
    "rings": _rings,
}

NAMES: tuple[str, ...] = tuple(_SETS)
"""The names of the bundled toy sets."""

LABELLED: dict[str, int] = {
    "moons": 2,
    "circles": 2,
    "8gaussians": 8,
    "25gaussians": 25,
    "pinwheel": 5,
    "spirals": 2,
    "rings": 4,
}
"""Number of parts (classes) of each toy set whose points carry a label."""


MIXTURES: tuple[str, ...] = ("8gaussians", "25gaussians")
"""The toy sets that are isotropic Gaussian mixtures with equal weights (the mode-collapse
benchmarks of VEEGAN and PacGAN: Srivastava et al. 2017; Lin et al. 2018)."""


def mixture_modes(name: str) -> tuple[np.ndarray, float]:
    """The component means ``float64 [K, 2]`` (row ``k`` is label ``k``) and the common
    standard deviation of a Gaussian-mixture toy set (one of :data:`MIXTURES`)."""
    if name == "8gaussians":
        return _ring_centres(), _RING_STD
    if name == "25gaussians":
        return _grid_centres(), _GRID_STD
    raise ValueError(f"{name!r} is not a Gaussian mixture; expected one of {', '.join(MIXTURES)}")


def make_labelled(
    name: str, n: int, *, seed: int | np.random.SeedSequence
) -> tuple[np.ndarray, np.ndarray | None]:
    """Points ``float32 [n, 2]`` of toy set ``name`` and their part labels ``int64 [n]``.

    The labels are ``None`` for sets without parts (``checkerboard``, ``swissroll``). The same
    ``(name, n, seed)`` always gives the same arrays.
    """
    if name not in _SETS:
        raise ValueError(f"unknown toy set {name!r}; expected one of {', '.join(NAMES)}")
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    x, y = _SETS[name](n, np.random.default_rng(seed))
    return x.astype(np.float32), None if y is None else y.astype(np.int64)


def make(name: str, n: int, *, seed: int | np.random.SeedSequence) -> np.ndarray:
    """``n`` i.i.d. points ``float32 [n, 2]`` of toy set ``name``, reproducible from ``seed``."""
    return make_labelled(name, n, seed=seed)[0]
