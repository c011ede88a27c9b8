"""Stepwise derivation for a diffusion model declared by an affine SDE dx = f(t) x dt + g(t) dw:
the moment ODEs and their solution (the perturbation kernel ``gendsl derive --brief`` prints),
the Fokker–Planck equation, the reverse SDE, the probability-flow ODE and Tweedie's formula.

References: Särkkä & Solin 2019, "Applied Stochastic Differential Equations" (ch. 5-6);
Anderson 1982, "Reverse-time diffusion equation models"; Song et al. 2021, "Score-Based
Generative Modeling through SDEs"; Efron 2011, "Tweedie's formula and selection bias".
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import sympy as sp

from gendsl.symbolic.expr import to_text
from gendsl.symbolic.steps.model import Topic, binding
from gendsl.symbolic.steps.parameterisation import parameterisations

if TYPE_CHECKING:
    from gendsl.symbolic.kernel import Kernel

__all__ = ["sde_steps"]

#: Helpers every SDE check uses: a Gaussian density with moments m(t), v(t) and the residual
#: of a Fokker–Planck equation for it, the moment ODEs substituted.
HELPERS = """
x = sp.Symbol("x", real=True)
m, v = sp.Function("m")(t), sp.Function("v")(t)
gauss = sp.exp(-(x - m) ** 2 / (2 * v)) / sp.sqrt(2 * sp.pi * v)
moment_odes = {sp.Derivative(m, t): f * m, sp.Derivative(v, t): 2 * f * v + g**2}


def fp_residual(drift, diffusion2, p=gauss):
    # (dp/dt + d/dx(drift p) - diffusion2/2 d2p/dx2) / p, the moment ODEs substituted
    r = sp.diff(p, t) + sp.diff(drift * p, x) - diffusion2 / 2 * sp.diff(p, x, 2)
    return sp.simplify(sp.expand((r / p).doit().subs(moment_odes)))


score = sp.diff(sp.log(gauss), x)
"""

_MOMENTS = """
y, mm, vv, F, G = sp.symbols("y m v F G", real=True)
expect = lambda e: sp.expand(e).subs(y**2, vv + mm**2).subs(y, mm)
dm = expect(F * y)                      # Ito drift of y is F y
dv = expect(2 * y * F * y + G**2) - 2 * mm * dm   # Ito drift of y^2, minus d(m^2)/dt
assert sp.simplify(dm - F * mm) == 0, dm
assert sp.simplify(dv - (2 * F * vv + G**2)) == 0, dv
"""

_SOLUTION_CLOSED = """
how = []
def vanishes(e):
    # identically zero: by sympy's simplify, else to 40 digits at 6 times in (0, T]
    if sp.simplify(e) == 0:
        return True
    how.append("numerically")
    return all(abs(e.subs(t, sp.Rational(j, 6) * sp.nsimplify(T)).evalf(50)) < 1e-40
               for j in range(1, 7))
assert vanishes(sp.diff(a, t) - f * a) and vanishes(a.subs(t, 0) - 1), "a' != f a"
assert vanishes(sp.diff(s2, t) - (2 * f * s2 + g**2)), "(s^2)' != 2 f s^2 + g^2"
assert vanishes(s2.subs(t, 0)), "s^2(0) != 0"
detail = "a' - f a = 0, a(0) = 1; (s^2)' - 2 f s^2 - g^2 = 0, s^2(0) = 0"
detail += " (to 40 digits at 6 times)" if how else ""
"""

_SOLUTION_QUADRATURE = """
from scipy.integrate import quad, solve_ivp
fn, gn = sp.lambdify(t, f), sp.lambdify(t, g)
ode = solve_ivp(lambda u, y: [fn(u) * y[0], 2 * fn(u) * y[1] + gn(u) ** 2], (0, T), [1.0, 0.0],
                rtol=1e-10, atol=1e-12, dense_output=True)
for tv, a_used, s2_used in zip(np.linspace(0, T, 5)[1:], a_gendsl, s2_gendsl):
    a_q = np.exp(quad(fn, 0, tv)[0])
    s2_q = a_q**2 * quad(lambda u: gn(u) ** 2 * np.exp(-2 * quad(fn, 0, u)[0]), 0, tv)[0]
    assert np.allclose(ode.sol(tv), [a_q, s2_q], rtol=1e-6, atol=1e-9), (tv, ode.sol(tv))
    assert np.allclose([a_used, s2_used], [a_q, s2_q], rtol=1e-6, atol=1e-9), (tv, a_used)
detail = "solve_ivp of the moment ODEs = the integrals = gendsl's quadrature, at 4 times"
"""

_FP = """
r = fp_residual(f * x, g**2)
assert r == 0, r
detail = "residual / p = 0 with m' = f m, v' = 2 f v + g^2"
"""

_SCORE = """
x0, eps = sp.symbols("x_0 epsilon", real=True)
A, S2 = sp.symbols("a s2", positive=True)
kernel = sp.exp(-(x - A * x0) ** 2 / (2 * S2)) / sp.sqrt(2 * sp.pi * S2)
s = sp.diff(sp.log(kernel), x).subs(x, A * x0 + sp.sqrt(S2) * eps)
assert sp.simplify(s + eps / sp.sqrt(S2)) == 0, s
"""

_REVERSE = """
b = f * x - g**2 * score
r = fp_residual(b, -(g**2))
assert r == 0, r
detail = "the backward Fokker-Planck residual of the reverse drift vanishes"
"""

_PF_ODE = """
r = fp_residual(f * x - g**2 / 2 * score, 0)
assert r == 0, r
detail = "the continuity-equation residual vanishes"
"""

_TWEEDIE = """
# Gaussian data x0 ~ N(mu0, sd0^2): p_t = N(a mu0, a^2 sd0^2 + s^2); complete the square in x0
x0, mu0 = sp.symbols("x_0 mu_0", real=True)
sd0, A, S2 = sp.symbols("sigma_0 a s2", positive=True)
post = sp.expand(-(x - A * x0) ** 2 / (2 * S2) - (x0 - mu0) ** 2 / (2 * sd0**2))
posterior_mean = -post.coeff(x0, 1) / (2 * post.coeff(x0, 2))
pt = sp.exp(-(x - A * mu0) ** 2 / (2 * (A**2 * sd0**2 + S2)))
tweedie = (x + S2 * sp.diff(sp.log(pt), x)) / A
assert sp.simplify(tweedie - posterior_mean) == 0
# a bimodal data law at t = T/2 of this spec: E[x0 | x_t] by quadrature vs the score's formula
tv = T / 2
a_t, s_t = float(sp.N(a_of(tv))), float(sp.sqrt(sp.N(s2_of(tv))))
x0s = np.linspace(-6, 6, 24001)
p0 = 0.5 * np.exp(-((x0s + 1) ** 2) / 0.18) / 0.3 + 0.5 * np.exp(-((x0s - 1.5) ** 2) / 0.5) / 0.5
xs, h = np.array([-1.0, 0.2, 1.3]), 1e-4
def pt_num(xv):
    return np.trapezoid(np.exp(-((xv - a_t * x0s) ** 2) / (2 * s_t**2)) * p0, x0s)
for xv in xs:
    w = np.exp(-((xv - a_t * x0s) ** 2) / (2 * s_t**2)) * p0
    mean = np.trapezoid(w * x0s, x0s) / np.trapezoid(w, x0s)
    sc = (np.log(pt_num(xv + h)) - np.log(pt_num(xv - h))) / (2 * h)
    assert abs((xv + s_t**2 * sc) / a_t - mean) < 1e-5, (xv, mean)
detail = f"Gaussian data: exact; bimodal data at t = {tv:g}: quadrature agrees to 1e-5"
"""


def _moments(k: Kernel, topic: Topic) -> None:
    x = k.var
    topic.step(
        f"d{x} = f(t) {x} dt + g(t) dw with f(t) = {to_text(k.f)}, g(t) = {to_text(k.g)}",
        rf"d{x} = f(t)\,{x}\,dt + g(t)\,dw,\ f(t) = {sp.latex(k.f)},\ g(t) = {sp.latex(k.g)}",
        "the declared sde, split into its dt and dw terms",
    )
    topic.step(
        "dm/dt = f(t) m,  dv/dt = 2 f(t) v + g(t)^2  for m = E[x_t | x_0], v = Var[x_t | x_0]",
        r"\tfrac{dm}{dt} = f(t)\,m,\quad \tfrac{dv}{dt} = 2f(t)\,v + g(t)^2",
        "Ito's lemma on x and x^2, expectations taken (the dw terms have mean zero), "
        "v = E[x^2] - m^2",
        "Särkkä & Solin 2019, ch. 5",
        ("sympy", _MOMENTS),
    )
    if k.a is not None and k.s2 is not None:
        topic.step(
            f"m(t) = a(t) x_0, v(t) = s(t)^2 with a(t) = {to_text(k.a)}, s(t)^2 = {to_text(k.s2)}",
            rf"m = a(t)x_0,\ v = s(t)^2,\ a(t) = {sp.latex(k.a)},\ s(t)^2 = {sp.latex(k.s2)}",
            "the linear ODEs solved with m(0) = x_0, v(0) = 0: a = exp(int_0^t f), "
            "s^2 = a^2 int_0^t g^2 / a^2",
            "Särkkä & Solin 2019, eqs. 6.2-6.3",
            ("sympy", _SOLUTION_CLOSED),
        )
    else:
        topic.step(
            "m(t) = a(t) x_0, v(t) = s(t)^2 with a = exp(int_0^t f), "
            "s^2 = a^2 int_0^t g^2 / a^2 (no closed form: quadrature)",
            r"a(t) = e^{\int_0^t f},\ s(t)^2 = a(t)^2\int_0^t g^2/a^2",
            "the linear ODEs solved with m(0) = x_0, v(0) = 0",
            "Särkkä & Solin 2019, eqs. 6.2-6.3",
            ("numeric", _SOLUTION_QUADRATURE),
        )
    topic.step(
        f"{x}_t | {x}_0 ~ N(a(t) {x}_0, s(t)^2 I)",
        rf"{x}_t\mid {x}_0 \sim \mathcal N(a(t)\,{x}_0,\ s(t)^2 I)",
        "a linear SDE with Gaussian start keeps its law Gaussian; mean and variance as above",
        "Särkkä & Solin 2019, ch. 6",
    )


def _densities(topic: Topic, closed: bool) -> None:
    topic.step(
        "dp/dt = -d/dx[f(t) x p] + 1/2 g(t)^2 d^2p/dx^2, and N(m(t), v(t)) solves it",
        r"\partial_t p = -\partial_x[f(t)\,x\,p] + \tfrac12 g(t)^2\,\partial_x^2 p",
        "Fokker-Planck (Kolmogorov forward) equation of the sde; substituting the Gaussian "
        "reduces it to the moment ODEs",
        "Särkkä & Solin 2019, ch. 5 (the Fokker-Planck-Kolmogorov equation)",
        ("sympy", _FP),
    )
    topic.step(
        "grad_x log p(x_t | x_0) = -(x_t - a x_0)/s^2 = -eps/s,  x_t = a x_0 + s eps",
        r"\nabla_x\log p(x_t\mid x_0) = -\frac{x_t - a x_0}{s^2} = -\frac{\epsilon}{s}",
        "the score of the Gaussian kernel; the eps-network predicts -s times it",
        "Vincent 2011; Song et al. 2021, eq. 7",
        ("sympy", _SCORE),
    )
    topic.step(
        "dx = [f(t) x - g(t)^2 grad_x log p_t(x)] dt + g(t) dw_bar, run from t = T to 0",
        r"dx = [f(t)x - g(t)^2\nabla_x\log p_t(x)]\,dt + g(t)\,d\bar w",
        "time reversal: the marginals p_t of the forward sde satisfy the backward "
        "Fokker-Planck equation of this drift",
        "Anderson 1982; Song et al. 2021, eq. 6",
        ("sympy", _REVERSE),
    )
    topic.step(
        "dx/dt = f(t) x - 1/2 g(t)^2 grad_x log p_t(x) has the same marginals p_t",
        r"\frac{dx}{dt} = f(t)x - \tfrac12 g(t)^2\nabla_x\log p_t(x)",
        "the Fokker-Planck equation rewritten as a continuity equation (zero diffusion)",
        "Song et al. 2021, eq. 13",
        ("sympy", _PF_ODE),
    )
    if closed:
        topic.step(
            "E[x_0 | x_t] = (x_t + s(t)^2 grad_x log p_t(x_t)) / a(t)",
            r"\mathbb E[x_0\mid x_t] = \frac{x_t + s(t)^2\nabla_x\log p_t(x_t)}{a(t)}",
            "differentiate p_t = int N(x_t; a x_0, s^2) p_0(x_0) dx_0 under the integral",
            "Robbins 1956; Efron 2011 (Tweedie's formula)",
            ("numeric", _TWEEDIE),
        )


def sde_steps(k: Kernel, *, predict: str = "eps") -> tuple[list[str], list[Topic]]:
    """The setup lines and topics of an SDE kernel ``k`` (module docstring); ``predict`` is
    what the network predicts."""
    closed = k.a is not None and k.s2 is not None
    setup = [binding("t", k.t), binding("f", k.f), binding("g", k.g), binding("T", k.T)]
    if not closed:
        times = np.linspace(0.0, k.T, 5)[1:]
        setup.append(binding("a_gendsl", [float(k.a_fn(tv)) for tv in times]))
        setup.append(binding("s2_gendsl", [float(k.s_fn(tv)) ** 2 for tv in times]))
    if closed:
        setup += [binding("a", k.a), binding("s2", k.s2)]
        setup += ["a_of = sp.Lambda(t, a)", "s2_of = sp.Lambda(t, s2)"]
    setup.append(HELPERS.strip())
    moments = Topic("the perturbation kernel from the moment ODEs")
    _moments(k, moments)
    densities = Topic("Fokker-Planck, the reverse SDE, the probability-flow ODE, Tweedie")
    _densities(densities, closed)
    return setup, [moments, densities, parameterisations(predict, "a(t)", "s(t)")]
