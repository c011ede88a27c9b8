"""The shared divergence / CNF-likelihood routine against independent formulas: autograd
Jacobian traces, the exact variance of Hutchinson's estimator, and the closed-form flow of a
linear field (x(t) = e^{A t} x, ∫ ∇·v dt = tr(A) t)."""

from __future__ import annotations

import math

import pytest
import torch

from gendsl.errors import UsageError
from gendsl.objectives.divergence import (
    check_trace,
    divergence_exact,
    divergence_hutchinson,
    flow_with_divergence,
    ode_log_prob,
    probe_for,
    rademacher,
)

DT = torch.float64
W = torch.tensor([[0.3, -1.2, 0.5], [0.8, 0.1, -0.4], [-0.6, 0.9, 0.2]], dtype=DT)


def field(x: torch.Tensor) -> torch.Tensor:
    """A nonlinear field with a non-diagonal Jacobian, row-wise in the batch."""
    return torch.tanh(x @ W.T) * x.flip(1) + x**3


def jacobian(x0: torch.Tensor) -> torch.Tensor:
    return torch.autograd.functional.jacobian(field, x0[None])[0, :, 0]


def test_exact_divergence_is_the_autograd_jacobian_trace():
    x = torch.randn(5, 3, generator=torch.Generator().manual_seed(2), dtype=DT)
    x.requires_grad_(True)
    got = divergence_exact(field(x), x)
    want = torch.stack([jacobian(xi).trace() for xi in x.detach()])
    torch.testing.assert_close(got, want)


def test_exact_divergence_of_image_shaped_tensors_sums_every_axis():
    """v(x) = x² per element on [B, 2, 2, 2]: ∇·v = Σ 2x."""
    x = torch.randn(3, 2, 2, 2, generator=torch.Generator().manual_seed(5), dtype=DT)
    x.requires_grad_(True)
    torch.testing.assert_close(divergence_exact(x**2, x), 2 * x.detach().sum((1, 2, 3)))


def test_exact_divergence_with_create_graph_has_the_gradient_of_the_trace():
    """d/dθ ∇·(θ x³) = Σ 3x² (the divergence itself is θ Σ 3x²)."""
    x = torch.randn(4, 3, generator=torch.Generator().manual_seed(6), dtype=DT)
    x.requires_grad_(True)
    theta = torch.tensor(0.7, dtype=DT, requires_grad=True)
    div = divergence_exact(theta * x**3, x, create_graph=True)
    (g,) = torch.autograd.grad(div.sum(), theta)
    torch.testing.assert_close(g, (3 * x.detach() ** 2).sum())


def test_hutchinson_is_the_quadratic_form_of_the_jacobian():
    x = torch.randn(4, 3, generator=torch.Generator().manual_seed(7), dtype=DT)
    eps = rademacher(x, generator=torch.Generator().manual_seed(8))
    assert set(eps.unique().tolist()) <= {-1.0, 1.0}
    x.requires_grad_(True)
    got = divergence_hutchinson(field(x), x, eps)
    want = torch.stack([e @ jacobian(xi) @ e for xi, e in zip(x.detach(), eps, strict=True)])
    torch.testing.assert_close(got, want)


def test_hutchinson_is_unbiased_within_its_exact_standard_error():
    """For Rademacher ε, εᵀAε = tr A + Σ_{i≠j} A_ij ε_i ε_j has mean tr A and variance
    Σ_{i<j} (A_ij + A_ji)²; the mean of n draws lies within 4 standard errors of tr A."""
    x0 = torch.randn(1, 3, generator=torch.Generator().manual_seed(3), dtype=DT)
    A = jacobian(x0[0])
    var = sum((A[i, j] + A[j, i]) ** 2 for i in range(3) for j in range(i + 1, 3))
    n = 20000
    x = x0.expand(n, 3).clone().requires_grad_(True)
    est = divergence_hutchinson(field(x), x, rademacher(x, generator=torch.Generator()))
    assert abs(est.mean() - A.trace()) < 4 * math.sqrt(var / n)
    # the variance formula itself: a sample variance has relative s.e. √((κ - 1)/n) ≈ 0.01 here
    assert abs(est.var() / var - 1) < 0.05


A = torch.tensor([[-0.5, 0.8], [-0.3, 0.2]], dtype=DT)


def linear(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    assert t.shape == (x.shape[0],)
    return x @ A.T


@pytest.mark.parametrize(("t0", "t1"), [(0.0, 1.0), (1.0, 0.0)])
@pytest.mark.parametrize("probe", [False, True])
def test_the_flow_of_a_linear_field_is_the_matrix_exponential(t0, t1, probe):
    x = torch.randn(6, 2, generator=torch.Generator().manual_seed(9), dtype=DT)
    ts = torch.tensor([t0, t1], dtype=DT)
    eps = rademacher(x, generator=torch.Generator().manual_seed(1)) if probe else None
    x_end, delta = flow_with_divergence(linear, x, ts, probe=eps, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(x_end, x @ torch.linalg.matrix_exp(A * (t1 - t0)).T)
    if probe:  # εᵀAε per sample, constant along the path
        want = torch.einsum("bi,ij,bj->b", eps, A, eps) * (t1 - t0)
    else:
        want = torch.full((6,), float(A.trace()) * (t1 - t0), dtype=DT)
    torch.testing.assert_close(delta, want)
    assert not x_end.requires_grad and not delta.requires_grad


def test_with_create_graph_the_divergence_integral_is_differentiable():
    """∫_1^0 ∇·(θ A x) dt = -θ tr A: its gradient in θ is -tr A, through the solver's steps."""
    theta = torch.tensor(1.3, dtype=DT, requires_grad=True)
    x = torch.randn(3, 2, generator=torch.Generator().manual_seed(4), dtype=DT)
    ts = torch.tensor([1.0, 0.0], dtype=DT)
    _, delta = flow_with_divergence(
        lambda y, t: theta * (y @ A.T),
        x,
        ts,
        create_graph=True,
        method="rk4",
        options={"step_size": 0.05},
    )
    (g,) = torch.autograd.grad(delta.sum(), theta)
    torch.testing.assert_close(g, -3 * A.trace())


def test_ode_log_prob_is_the_change_of_variables_of_the_linear_flow():
    """x(0) = e^{-A} x(1): log p_1(x) = log N(e^{-A} x; 0, I) - tr A."""
    x = torch.randn(5, 2, generator=torch.Generator().manual_seed(10), dtype=DT)
    base = torch.distributions.Normal(torch.zeros((), dtype=DT), 1.0)

    def log_p0(z):
        return base.log_prob(z).sum(1)

    ts = torch.tensor([1.0, 0.0], dtype=DT)
    got = ode_log_prob(linear, x, ts, log_p0, rtol=1e-10, atol=1e-10)
    want = log_p0(x @ torch.linalg.matrix_exp(-A).T) - A.trace()
    torch.testing.assert_close(got, want)
    est = ode_log_prob(
        linear,
        x,
        ts,
        log_p0,
        trace="hutchinson",
        rtol=1e-10,
        atol=1e-10,
        generator=torch.Generator().manual_seed(0),
    )
    eps = rademacher(x, generator=torch.Generator().manual_seed(0))  # the same probes
    quad = torch.einsum("bi,ij,bj->b", eps, A, eps)  # tr A ± (A_01 + A_10): never tr A here
    torch.testing.assert_close(est, want + A.trace() - quad)


def test_trace_names_are_checked():
    assert check_trace("exact") == "exact" and probe_for("exact", torch.zeros(2, 2)) is None
    assert probe_for("hutchinson", torch.zeros(2, 2)).abs().eq(1).all()
    with pytest.raises(UsageError, match="trace must be one of exact, hutchinson; got 'x'"):
        check_trace("x")
