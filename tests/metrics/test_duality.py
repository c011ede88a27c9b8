"""The KR gap with known 1-Lipschitz witnesses against POT's exact W1 (Euclidean cost)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.stats
import torch

from gendsl.metrics import w1, w2
from gendsl.metrics.duality import critic_gap, kr_duality, max_gradient_norm


def test_shifted_gaussian_w1_is_the_shift_and_identity_witness_attains_it() -> None:
    """y = x + δ in 1-D: the monotone coupling is optimal, W1 = |δ| = E f(y) − E f(x), f = id."""
    x = torch.randn(400, 1, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    y = x + 2.0
    assert w1(x, y) == pytest.approx(2.0, abs=1e-9)
    assert critic_gap(lambda v: v[:, 0], y, x) == pytest.approx(2.0, abs=1e-12)
    assert critic_gap(lambda v: -v[:, 0], y, x) == pytest.approx(-2.0, abs=1e-12)


def test_w1_matches_scipy_on_independent_1d_samples() -> None:
    rng = np.random.default_rng(1)
    x, y = rng.normal(0.0, 1.0, 300), rng.normal(0.7, 1.5, 300)
    expected = scipy.stats.wasserstein_distance(x, y)
    assert w1(x[:, None], y[:, None]) == pytest.approx(expected, rel=1e-9)
    assert critic_gap(lambda v: v[:, 0], torch.tensor(y)[:, None], torch.tensor(x)[:, None]) <= (
        expected + 1e-12
    )  # KR: every 1-Lipschitz f is below W1


def test_w1_cost_is_euclidean_not_squared() -> None:
    """A rigid 2-D shift by (3, 4): W1 = 5 (‖·‖), W2 = 5; squared cost would give 25."""
    x = torch.randn(200, 2, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    y = x + torch.tensor([3.0, 4.0], dtype=torch.float64)
    assert w1(x, y) == pytest.approx(5.0, abs=1e-9)
    assert w2(x, y) == pytest.approx(5.0, abs=1e-9)
    # the unit-direction witness f(v) = <v, u>, u = (3, 4)/5, is 1-Lipschitz and attains W1
    u = torch.tensor([0.6, 0.8], dtype=torch.float64)
    gen = torch.Generator().manual_seed(0)
    report = kr_duality(lambda v: v @ u, y, x, generator=gen)
    assert report["critic_gap"] == pytest.approx(5.0, abs=1e-12)
    assert report["w1"] == pytest.approx(5.0, abs=1e-9)
    assert report["critic_grad_norm_max"] == pytest.approx(1.0, abs=1e-12)


def test_max_gradient_norm_of_a_quadratic() -> None:
    """f(v) = ‖v‖²/2 has ∇f = v: the largest norm over the samples and their interpolates."""
    real = torch.tensor([[3.0, 4.0], [0.0, 1.0]], dtype=torch.float64)
    fake = torch.tensor([[0.0, 0.0], [1.0, 0.0]], dtype=torch.float64)
    gen = torch.Generator().manual_seed(0)
    norm = max_gradient_norm(lambda v: 0.5 * v.square().sum(1), real, fake, generator=gen)
    assert norm == pytest.approx(5.0, abs=1e-12)
