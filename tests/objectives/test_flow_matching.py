"""Flow matching: every stdlib path's target velocity against finite differences of x_t and
against hand-written coefficients; the loss at the analytic optimal velocity for
Gaussian -> Gaussian equals the closed-form conditional variance and is below perturbed
velocities; the straightness measure on fields with known values."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from gendsl.analysis import load_checked
from gendsl.objectives.flow_matching import (
    T_EPS,
    AffinePath,
    flow_matching_loss,
    sample_time,
    straightness,
)
from gendsl.resources import stdlib_dir
from gendsl.symbolic import path_velocity, torch_fns

torch.set_num_threads(1)

# Coefficients (alpha, beta, gamma) of each stdlib path, written out by hand from the papers.
PATHS = {
    "flow_matching": (lambda t: 1 - 0.999 * t, lambda t: t, lambda t: 0 * t),
    "ot_cfm": (lambda t: 1 - t, lambda t: t, lambda t: 0.1 + 0 * t),
    "sb_cfm": (lambda t: 1 - t, lambda t: t, lambda t: 0.5 * np.sqrt(t * (1 - t))),
    "rectified_flow": (lambda t: 1 - t, lambda t: t, lambda t: 0 * t),
    "stochastic_interpolant": (
        lambda t: np.cos(np.pi * t / 2),
        lambda t: np.sin(np.pi * t / 2),
        lambda t: np.sqrt(2 * t * (1 - t)),
    ),
}


def stdlib_path(name: str) -> AffinePath:
    checked = load_checked(str(stdlib_dir() / f"{name}.gen"))
    return AffinePath(**torch_fns(path_velocity(checked.path, checked.lets)))


@pytest.mark.parametrize("name", sorted(PATHS))
def test_target_is_time_derivative_of_path(name):
    path = stdlib_path(name)
    g = torch.Generator().manual_seed(0)
    x0, x1, w = (torch.randn(64, 3, generator=g, dtype=torch.float64) for _ in range(3))
    t = 0.05 + 0.9 * torch.rand(64, generator=g, dtype=torch.float64)
    h = 1e-6
    fd = (path.sample_xt(x0, x1, t + h, w) - path.sample_xt(x0, x1, t - h, w)) / (2 * h)
    torch.testing.assert_close(path.target(x0, x1, t, w), fd, rtol=1e-6, atol=1e-6)
    # x_t itself matches the hand-written coefficients
    a, b, c = (torch.as_tensor(f(t.numpy()))[:, None] for f in PATHS[name])
    torch.testing.assert_close(path.sample_xt(x0, x1, t, w), a * x0 + b * x1 + c * w)


def test_sample_time_stays_inside_the_open_interval():
    t = sample_time(100_000, like=torch.zeros(()), generator=torch.Generator().manual_seed(1))
    assert float(t.min()) >= T_EPS and float(t.max()) <= 1 - T_EPS
    assert abs(float(t.mean()) - 0.5) < 0.01


# --------------------------------------------------------------- Gaussian -> Gaussian


M, S = 1.5, 0.4  # x0 ~ N(0, 1), x1 ~ N(M, S^2) per coordinate, independent coupling


def v_star(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """E[x1 - x0 | x_t = x] for x_t = (1 - t) x0 + t x1: jointly Gaussian regression."""
    t = t[:, None]
    V = (1 - t) ** 2 + t**2 * S**2
    return M + (t * S**2 - (1 - t)) / V * (x - t * M)


def minimal_loss_per_dim() -> float:
    """∫_0^1 Var(x1 - x0 | x_t) dt = ∫ (1 + S²) - (t S² - (1 - t))² / V(t) dt."""
    t = np.linspace(0, 1, 200_001)
    V = (1 - t) ** 2 + t**2 * S**2
    return float(np.trapezoid(1 + S**2 - (t * S**2 - (1 - t)) ** 2 / V, t))


def straight_path() -> AffinePath:
    return AffinePath(
        lambda t: 1 - t,
        lambda t: t,
        torch.zeros_like,
        lambda t: -torch.ones_like(t),
        torch.ones_like,
        torch.zeros_like,
    )


def test_loss_at_optimal_velocity_is_the_conditional_variance_and_minimal():
    g = torch.Generator().manual_seed(2)
    n, D = 200_000, 2
    x0 = torch.randn(n, D, generator=g, dtype=torch.float64)
    x1 = M + S * torch.randn(n, D, generator=g, dtype=torch.float64)
    t = sample_time(n, like=x0, generator=g)
    path = straight_path()

    def loss(v_fn):
        return float(flow_matching_loss(v_fn, path, x0, x1, t=t, w=torch.zeros_like(x0)).mean())

    best = loss(v_star)
    assert best == pytest.approx(D * minimal_loss_per_dim(), rel=0.02)
    for delta in (lambda x, t: 0.2, lambda x, t: 0.2 * x, lambda x, t: -0.3 * t[:, None]):
        assert loss(lambda x, t, d=delta: v_star(x, t) + d(x, t)) > best + 0.01


def test_loss_is_squared_norm_of_residual():
    path = straight_path()
    x0, x1 = torch.zeros(3, 2), torch.tensor([[1.0, 2.0], [0.0, 0.0], [3.0, -1.0]])
    t = torch.full((3,), 0.5)
    per = flow_matching_loss(
        lambda x, t: torch.zeros_like(x), path, x0, x1, t=t, w=torch.zeros_like(x0)
    )
    torch.testing.assert_close(per, torch.tensor([5.0, 0.0, 10.0]))


# --------------------------------------------------------------- straightness


def test_straight_field_has_zero_straightness():
    x0 = torch.randn(50, 2, generator=torch.Generator().manual_seed(3))
    c = torch.tensor([1.0, -2.0])
    assert float(straightness(lambda x, t: c.expand_as(x), x0, steps=20)) < 1e-10


def test_accelerating_field_straightness_closed_form():
    """v = 2 c t: Z_1 - Z_0 = c, S = ∫ ‖2ct - c‖² dt = ‖c‖² / 3."""
    c = torch.tensor([1.0, -2.0], dtype=torch.float64)
    x0 = torch.zeros(4, 2, dtype=torch.float64)
    s = float(straightness(lambda x, t: 2 * t[:, None] * c, x0, steps=2000))
    assert s == pytest.approx(float(c @ c) / 3, rel=1e-3)


def test_rotation_straightness_closed_form():
    """v = (π/2) J x rotates by 90° over [0, 1]: S = E‖z‖² ((π/2)² - 2) for z ~ N(0, I)."""
    J = torch.tensor([[0.0, -1.0], [1.0, 0.0]], dtype=torch.float64)
    x0 = torch.randn(4000, 2, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    s = float(straightness(lambda x, t: (math.pi / 2) * x @ J.T, x0, steps=400))
    expected = float((x0**2).sum(1).mean()) * ((math.pi / 2) ** 2 - 2)
    assert s == pytest.approx(expected, rel=0.01)
