"""SDE kernels derived from spec text, checked against simulation and closed forms."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torchsde
from symbolic_specs import first, lets_of, model_of

from gendsl import ir
from gendsl.errors import SpecError
from gendsl.symbolic.kernel import sde_kernel
from gendsl.symbolic.torch_adapter import to_process, torch_fns

VP = """
  let beta_min = 0.1
  let beta_max = 20
  let beta(t) = beta_min + t * (beta_max - beta_min)
  sde dx = -0.5 * beta(t) * x * dt + sqrt(beta(t)) * dw, t in [0, 1]
"""
SUBVP = """
  let beta(t) = 0.1 + t * 19.9
  let B(t) = 0.1 * t + 0.5 * t^2 * 19.9
  sde dx = -0.5 * beta(t) * x * dt + sqrt(beta(t) * (1 - exp(-2 * B(t)))) * dw, t in [0, 1]
"""
VE = """
  let sigma(t) = 0.01 * (50 / 0.01)^t
  sde dx = sqrt(d(sigma(t)^2)/dt) * dw, t in [0, 1]
"""
CUSTOM = """
  let beta(t) = 0.1 + 19.9 * t^2
  sde dx = -0.5 * beta(t) * x * dt + sqrt(beta(t)) * dw, t in [0, 1]
"""
COSINE = """
  let beta(t) = 0.1 + 19.9 * (1 - cos(pi * t)) / 2
  sde dx = -0.5 * beta(t) * x * dt + sqrt(beta(t)) * dw, t in [0, 1]
"""
QUADRATURE = """
  let beta(t) = 1 + 3 * sqrt(1 + t^3)
  sde dx = -0.5 * beta(t) * x * dt + sqrt(2 + sin(3 * t)) * dw, t in [0, 1]
"""


def _vp_beta(t: torch.Tensor) -> torch.Tensor:
    return 0.1 + 19.9 * t


def _vp_B(t: torch.Tensor) -> torch.Tensor:
    return 0.1 * t + 0.5 * 19.9 * t**2


def _cos_beta(t: torch.Tensor) -> torch.Tensor:
    return 0.1 + 19.9 * (1 - torch.cos(torch.pi * t)) / 2


def _cos_B(t: torch.Tensor) -> torch.Tensor:
    """∫₀ᵗ β = 10.05 t − 9.95 sin(πt)/π."""
    return 10.05 * t - 9.95 * torch.sin(torch.pi * t) / torch.pi


_LOG_R = math.log(5000.0)

# (spec, f(t), g(t), a(t), s(t)²) written independently from Song et al. 2021, app. B.
CASES = {
    "vp": (
        VP,
        lambda t: -0.5 * _vp_beta(t),
        lambda t: _vp_beta(t).sqrt(),
        lambda t: torch.exp(-0.5 * _vp_B(t)),
        lambda t: 1 - torch.exp(-_vp_B(t)),
    ),
    "subvp": (
        SUBVP,
        lambda t: -0.5 * _vp_beta(t),
        lambda t: (_vp_beta(t) * (1 - torch.exp(-2 * _vp_B(t)))).sqrt(),
        lambda t: torch.exp(-0.5 * _vp_B(t)),
        lambda t: (1 - torch.exp(-_vp_B(t))) ** 2,
    ),
    "ve": (
        VE,
        lambda t: torch.zeros_like(t),
        lambda t: 0.01 * torch.exp(t * _LOG_R) * math.sqrt(2 * _LOG_R),
        lambda t: torch.ones_like(t),
        lambda t: 0.01**2 * (torch.exp(2 * t * _LOG_R) - 1),
    ),
    "custom": (
        CUSTOM,
        lambda t: -0.5 * (0.1 + 19.9 * t**2),
        lambda t: (0.1 + 19.9 * t**2).sqrt(),
        lambda t: torch.exp(-0.5 * (0.1 * t + 19.9 * t**3 / 3)),
        lambda t: 1 - torch.exp(-(0.1 * t + 19.9 * t**3 / 3)),
    ),
    "cosine": (
        COSINE,
        lambda t: -0.5 * _cos_beta(t),
        lambda t: _cos_beta(t).sqrt(),
        lambda t: torch.exp(-0.5 * _cos_B(t)),
        lambda t: 1 - torch.exp(-_cos_B(t)),
    ),
}


def kernel_of(body: str):
    model = model_of(body)
    return sde_kernel(first(model, ir.SDE), lets_of(model))


class _SDE(torch.nn.Module):
    noise_type, sde_type = "diagonal", "ito"

    def __init__(self, f, g):
        super().__init__()
        self._f, self._g = f, g

    def f(self, t, y):
        return self._f(t.expand(y.shape[0], 1).to(y)) * y

    def g(self, t, y):
        return self._g(t.expand(y.shape[0], 1).to(y)).expand_as(y)


def simulate(f, g, times: list[float], n: int = 4000, x0: float = 1.5) -> torch.Tensor:
    """x_t at ``times`` for n Euler-Maruyama paths of dx = f x dt + g dw from x0 (torchsde)."""
    ts = torch.tensor([0.0, *times], dtype=torch.float64)
    y0 = torch.full((n, 1), x0, dtype=torch.float64)
    bm = torchsde.BrownianInterval(0.0, 1.0, size=(n, 1), dtype=torch.float64, entropy=1234)
    with torch.no_grad():
        ys = torchsde.sdeint(_SDE(f, g), y0, ts, bm=bm, method="euler", dt=1e-3)
    return ys[1:, :, 0]


TIMES = [0.05, 0.2, 0.5, 1.0]


@pytest.mark.parametrize("name", list(CASES))
def test_kernel_matches_closed_form(name):
    body, f, g, a, s2 = CASES[name]
    k = kernel_of(body)
    t = torch.linspace(0, 1, 41, dtype=torch.float64)
    assert k.closed_form == {"a": True, "s2": True, "log_snr": True}
    np.testing.assert_allclose(k.f_fn(t.numpy()), f(t).numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(k.g_fn(t.numpy()), g(t).numpy(), rtol=1e-10)
    np.testing.assert_allclose(k.a_fn(t.numpy()), a(t).numpy(), rtol=1e-10)
    np.testing.assert_allclose(k.s_fn(t.numpy()) ** 2, s2(t).numpy(), rtol=1e-9, atol=1e-14)
    fns = torch_fns(k)
    np.testing.assert_allclose(fns["a"](t).numpy(), a(t).numpy(), rtol=1e-10)
    np.testing.assert_allclose(fns["s"](t).numpy() ** 2, s2(t).numpy(), rtol=1e-9, atol=1e-14)
    # log-SNR = log a² / s², away from t = 0 where it diverges
    lam = torch_fns_log_snr(k, t[1:])
    np.testing.assert_allclose(lam, torch.log(a(t[1:]) ** 2 / s2(t[1:])).numpy(), rtol=1e-8)


def torch_fns_log_snr(k, t: torch.Tensor) -> np.ndarray:
    from gendsl.symbolic.expr import lambdify_np

    return lambdify_np(k.log_snr, k.t)(t.numpy())


@pytest.mark.parametrize("name", [*CASES, "quadrature"])
def test_kernel_matches_simulation(name):
    if name == "quadrature":
        body = QUADRATURE

        def f(t):
            return -0.5 * (1 + 3 * torch.sqrt(1 + t**3))

        def g(t):
            return torch.sqrt(2 + torch.sin(3 * t))
    else:
        body, f, g, *_ = CASES[name]
    k = kernel_of(body)
    if name == "quadrature":
        assert k.closed_form == {"a": False, "s2": False, "log_snr": False}
    x = simulate(f, g, TIMES)
    t = np.array(TIMES)
    a, s = k.a_fn(t), k.s_fn(t)
    n = x.shape[1]
    mean, var = x.mean(1).numpy(), x.var(1).numpy()
    assert np.all(np.abs(mean - 1.5 * a) <= 4 * s / math.sqrt(n) + 1e-3 * (1 + s)), (mean, a)
    assert np.all(np.abs(var / s**2 - 1) <= 4 * math.sqrt(2 / n) + 0.01), (var, s**2)


def test_quadrature_fallback_is_accurate():
    """Trapezoid on the fine grid vs scipy quad at a few times."""
    from scipy.integrate import quad

    k = kernel_of(QUADRATURE)

    def f(u):
        return -0.5 * (1 + 3 * math.sqrt(1 + u**3))

    def g2(u):
        return 2 + math.sin(3 * u)

    for t in (0.1, 0.55, 1.0):
        log_a = quad(f, 0, t)[0]
        inner = quad(lambda u: g2(u) * math.exp(-2 * quad(f, 0, u)[0]), 0, t)[0]
        assert k.a_fn(np.array(t)) == pytest.approx(math.exp(log_a), rel=1e-7)
        assert k.s_fn(np.array(t)) ** 2 == pytest.approx(math.exp(2 * log_a) * inner, rel=1e-6)


def test_recognised_processes_and_parameters():
    assert (kernel_of(VP).kind, kernel_of(VP).params) == (
        "vp",
        pytest.approx({"beta_min": 0.1, "beta_max": 20.0}),
    )
    assert kernel_of(SUBVP).kind == "subvp"
    ve = kernel_of(VE)
    assert ve.kind == "ve"
    assert ve.params == pytest.approx({"sigma_min": 0.01, "sigma_max": 50.0})
    assert kernel_of(CUSTOM).kind == "affine"
    # a VP drift with a mismatched diffusion is not VP
    assert kernel_of(VP.replace("sqrt(beta(t))", "sqrt(2 * beta(t))")).kind == "affine"


def test_to_process_builds_the_matching_object():
    from gendsl.processes import VESDE, VPSDE, AffineSDE

    t = torch.tensor([0.1, 0.5, 0.9], dtype=torch.float64)
    vp = to_process(kernel_of(VP))
    assert isinstance(vp, VPSDE) and vp.beta_max == pytest.approx(20.0)
    assert isinstance(to_process(kernel_of(VE)), VESDE)
    for body in (CUSTOM, QUADRATURE):
        k = kernel_of(body)
        proc = to_process(k, t_min=1e-3)
        assert isinstance(proc, AffineSDE)
        a, s = proc.marginal(t)
        np.testing.assert_allclose(a.numpy(), k.a_fn(t.numpy()), rtol=1e-4)
        np.testing.assert_allclose(s.numpy(), k.s_fn(t.numpy()), rtol=1e-4)


@pytest.mark.parametrize(
    ("body", "bad", "why"),
    [
        ("sde dx = dw - x^2 * dt, t in [0, 1]", "x^2 * dt", "drift must be affine in x"),
        ("sde dx = -x * dt + x * dw, t in [0, 1]", "x * dw", "must not depend on x"),
        ("sde dx = -x * dt + sin(x) * dt + dw, t in [0, 1]", "sin(x) * dt", "affine in x"),
        ("sde dx = -x * dt + 1 * dt + dw, t in [0, 1]", "1 * dt", "offset"),
        ("sde dx = -x * dt + t + dw, t in [0, 1]", "t", "neither dt nor dw"),
        ("sde dx = -x * dt + dt * dw, t in [0, 1]", "dt * dw", "each term"),
        ("sde dx = -x * dt + dz, t in [0, 1]", "dz", "unexpected differential"),
        ("sde dx = -x * dt + sqrt(d(t^2)/dz) * dw, t in [0, 1]", "dz", "unexpected differential"),
        (
            "let b(t) = d(t^2)/dx\n  sde dx = -b(t) * x * dt + dw, t in [0, 1]",
            "dx",
            "expected d(E)/dt, found d(E)/dx",
        ),
        ("sde dx = -x * dt + dw, t in [0.5, 1]", "0.5", "start at t = 0"),
    ],
)
def test_errors_are_located(body, bad, why):
    text = f"model m {{\n  data x : real[2]\n  {body}\n}}\n"
    model = model_of(f"  {body}")
    with pytest.raises(SpecError) as info:
        sde_kernel(first(model, ir.SDE), lets_of(model))
    err = info.value
    assert why in err.message
    line = text.splitlines()[err.span.line - 1]
    assert line[err.span.column - 1 : err.span.end_column - 1] == bad
    if "affine" in why or "depend" in why:
        assert "ssm" in err.message
