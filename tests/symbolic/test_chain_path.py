"""Chain closed forms vs direct simulation; path velocities vs finite differences and autograd."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from symbolic_specs import first, lets_of, model_of

from gendsl import ir
from gendsl.errors import SpecError
from gendsl.symbolic.chain import chain_kernel
from gendsl.symbolic.path import path_velocity
from gendsl.symbolic.torch_adapter import torch_fns


def same_text(shown: str, expected: str) -> bool:
    """The span shows ``expected`` (the parser's spans leave out outer brackets and parens)."""
    return shown.strip("()[]") == expected.strip("()[]")


def chain_of(body: str):
    model = model_of(body)
    return chain_kernel(first(model, ir.Chain), lets_of(model))


def path_of(text: str):
    model = model_of(f"  path x_t = {text}")
    return path_velocity(first(model, ir.Path), lets_of(model))


LINEAR = """
  let beta = linspace(0.01, 0.2, 50)
  chain x[k] ~ Normal(sqrt(1 - beta[k]) * x[k-1], sqrt(beta[k])), k in 1..50
"""
FUNCTION = """
  let beta(k) = 0.3 * sin(pi * k / 100)^2 + 0.001
  chain x[k] ~ Normal(sqrt(1 - beta(k)) * x[k-1], sqrt(beta(k))), k in 1..50
"""


def _function_betas() -> np.ndarray:
    k = np.arange(1, 51)
    return 0.3 * np.sin(np.pi * k / 100) ** 2 + 0.001


@pytest.mark.parametrize(
    ("body", "betas"),
    [(LINEAR, np.linspace(0.01, 0.2, 50)), (FUNCTION, _function_betas())],
)
def test_chain_alpha_bar_matches_simulation(body, betas):
    ck = chain_of(body)
    assert ck.K == 50
    np.testing.assert_allclose(ck.betas, betas, rtol=1e-12)
    rng = np.random.default_rng(0)
    n, x0 = 20000, 2.0
    x = np.full(n, x0)
    for k in range(1, 51):
        x = math.sqrt(1 - betas[k - 1]) * x + math.sqrt(betas[k - 1]) * rng.standard_normal(n)
        if k in (5, 20, 50):
            abar = ck.alpha_bar[k - 1]
            sd = math.sqrt(1 - abar)
            assert abs(x.mean() - math.sqrt(abar) * x0) < 4 * sd / math.sqrt(n)
            assert abs(x.var() / (1 - abar) - 1) < 4 * math.sqrt(2 / n)
    # the product formula itself (Ho et al. 2020, eq. 4)
    assert ck.alpha_bar[-1] == pytest.approx(np.prod(1 - betas), rel=1e-12)


def test_chain_schedule_expression_is_closed_form():
    ck = chain_of(LINEAR)
    k = ck.k
    assert float(ck.beta.subs(k, 1)) == pytest.approx(0.01)
    assert float(ck.beta.subs(k, 50)) == pytest.approx(0.2)


@pytest.mark.parametrize(
    ("step", "bad", "why"),
    [
        ("Normal(sqrt(1 - b[k]) * x[k-1], b[k])", None, "standard deviation"),
        ("Normal(sqrt(1 - b[k]) * x[k-2], sqrt(b[k]))", "x[k-2]", "previous state"),
        ("Laplace(sqrt(1 - b[k]) * x[k-1], sqrt(b[k]))", "Laplace", "Gaussian step"),
        ("Normal(sqrt(1 - b[k]) * x[k-1] + 1, sqrt(b[k]))", None, "mean of a chain step"),
        ("Normal(sqrt(1 - b[k+1]) * x[k-1], sqrt(b[k+1]))", "b[k+1]", "outside b[1..10]"),
    ],
)
def test_chain_errors(step, bad, why):
    text = f"  let b = linspace(0.01, 0.1, 10)\n  chain x[k] ~ {step}, k in 1..10"
    with pytest.raises(SpecError) as info:
        chain_of(text)
    assert why in info.value.message
    if bad is not None:
        line = text.splitlines()[info.value.span.line - 3]
        assert same_text(line[info.value.span.column - 1 : info.value.span.end_column - 1], bad)


PATHS = {
    "linear": ("(1 - t) * x0 + t * x1", lambda t: (1 - t, t, 0 * t)),
    "noisy": ("(1 - t) * x0 + t * x1 + 0.1 * w", lambda t: (1 - t, t, 0.1 + 0 * t)),
    "trig": (
        "cos(pi*t/2) * x0 + sin(pi*t/2) * x1 + sqrt(2*t*(1-t)) * w",
        lambda t: (np.cos(np.pi * t / 2), np.sin(np.pi * t / 2), np.sqrt(2 * t * (1 - t))),
    ),
    "let": ("(1 - s(t)) * x0 + s(t) * x1", lambda t: (1 - t**3, t**3, 0 * t)),
    "sigma_min": ("(1 - (1 - 0.01) * t) * x0 + t * x1", lambda t: (1 - 0.99 * t, t, 0 * t)),
}


@pytest.mark.parametrize("name", list(PATHS))
def test_path_velocity_is_the_time_derivative(name):
    text, coefs = PATHS[name]
    model = model_of(f"  let s(u) = u^3\n  path x_t = {text}")
    pk = path_velocity(first(model, ir.Path), lets_of(model))
    rng = np.random.default_rng(1)
    x0, x1, w = rng.standard_normal((3, 5))
    t = np.array([0.1, 0.37, 0.5, 0.81, 0.95])[:, None]
    h = 1e-6

    def x_t(tt):
        a, b, g = coefs(tt)
        return a * x0 + b * x1 + g * w

    fd = (x_t(t + h) - x_t(t - h)) / (2 * h)
    u = pk.fn("d_alpha")(t) * x0 + pk.fn("d_beta")(t) * x1 + pk.fn("d_gamma")(t) * w
    np.testing.assert_allclose(u, fd, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(
        pk.fn("alpha")(t) * x0 + pk.fn("beta")(t) * x1 + pk.fn("gamma")(t) * w,
        x_t(t),
        rtol=1e-12,
        atol=1e-12,
    )


def test_path_torch_fns_match_autograd():
    pk = path_of("cos(pi*t/2) * x0 + sin(pi*t/2) * x1 + sqrt(2*t*(1-t)) * w")
    fns = torch_fns(pk)
    t = torch.tensor([0.2, 0.5, 0.7], dtype=torch.float64, requires_grad=True)
    x_t = torch.cos(torch.pi * t / 2) * 1.3 - torch.sin(torch.pi * t / 2) * 0.4
    x_t = x_t + torch.sqrt(2 * t * (1 - t)) * 0.9
    (grad,) = torch.autograd.grad(x_t.sum(), t)
    tt = t.detach()
    u = fns["d_alpha"](tt) * 1.3 - fns["d_beta"](tt) * 0.4 + fns["d_gamma"](tt) * 0.9
    torch.testing.assert_close(u, grad)
    assert fns["gamma"](torch.zeros(2)).tolist() == [0.0, 0.0]


@pytest.mark.parametrize(
    ("text", "bad", "why"),
    [
        ("(1 - t) * x0 + t * x1 * x0", "t * x1 * x0", "linear in x0, x1 and w"),
        ("(1 - t) * x0 + t * x1 + t", "t", "linear in x0, x1 and w"),
        ("(1 - t) * x0 + t * x1 + sin(w)", "sin(w)", "linear in x0, x1 and w"),
        ("(1 - t) * x0 + 0.5 * t * x1", None, "at t = 1 expected x1"),
        ("x0 + t * x1", None, "at t = 1 expected x1"),
        ("(1 - t) * x1 + t * x0", None, "at t = 0 expected x0"),
    ],
)
def test_path_errors(text, bad, why):
    with pytest.raises(SpecError) as info:
        path_of(text)
    assert why in info.value.message
    span = info.value.span
    line = f"  path x_t = {text}"
    if bad is not None:
        assert same_text(line[span.column - 1 : span.end_column - 1], bad)
    else:
        assert same_text(line[span.column - 1 : span.end_column - 1], text)
