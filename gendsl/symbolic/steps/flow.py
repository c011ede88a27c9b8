"""Stepwise derivation for a normalizing flow: the change of variables, the coupling layer's
triangular Jacobian and its log-determinant, actnorm's, the 1×1 convolution's LU
log-determinant, and the instantaneous change of variables of a continuous flow with
Hutchinson's trace estimator — each for the layers the spec declares.

References: Dinh, Sohl-Dickstein & Bengio 2017 (RealNVP, eqs. 3-6); Kingma & Dhariwal 2018
(Glow, table 1); Chen et al. 2018 (Neural ODEs, Theorem 1); Grathwohl et al. 2019 (FFJORD);
Hutchinson 1989.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gendsl import ir
from gendsl.symbolic.steps.model import Topic

if TYPE_CHECKING:
    from gendsl.ir import CheckedModel

__all__ = ["flow_steps"]

_CHANGE = """
from scipy.integrate import quad
from scipy.optimize import brentq
f = lambda z: z + 0.5 * np.tanh(z)                  # an invertible 1-D map, f' > 0
df = lambda z: 1 + 0.5 / np.cosh(z) ** 2
inv = lambda x: brentq(lambda z: f(z) - x, -50, 50)
p_z = lambda z: np.exp(-z**2 / 2) / np.sqrt(2 * np.pi)
p_x = lambda x: p_z(inv(x)) / df(inv(x))           # log p(x) = log p(z) - log |f'(z)|
mass = quad(p_x, -12, 12, limit=200)[0]
mean_x = quad(lambda x: x * p_x(x), -12, 12, limit=200)[0]
mean_fz = quad(lambda z: f(z) * p_z(z), -12, 12)[0]
assert abs(mass - 1) < 1e-8 and abs(mean_x - mean_fz) < 1e-8, (mass, mean_x, mean_fz)
assert abs(quad(lambda z: z**2 * p_z(z), -12, 12)[0]
           - quad(lambda x: inv(x) ** 2 * p_x(x), -12, 12, limit=200)[0]) < 1e-7
detail = f"the transformed density integrates to {mass:.10f}; E f(z) = E x"
"""

_COUPLING = """
x1, x2, x3, x4 = sp.symbols("x1:5", real=True)
s1, s2, t1, t2 = (sp.Function(n)(x1, x2) for n in ("s1", "s2", "t1", "t2"))
y = sp.Matrix([x1, x2, x3 * sp.exp(s1) + t1, x4 * sp.exp(s2) + t2])
J = y.jacobian([x1, x2, x3, x4])
assert all(J[i, j] == 0 for i in range(4) for j in range(i + 1, 4)), J  # lower triangular
assert sp.simplify(J.det() - sp.exp(s1 + s2)) == 0, J.det()
detail = "4-D coupling: the Jacobian is lower triangular, det = exp(s1 + s2)"
"""

_ACTNORM = """
scale, bias, x = sp.symbols("s b x", real=True)
y = sp.exp(scale) * x + bias
assert sp.simplify(sp.log(sp.diff(y, x)) - scale) == 0
rng = np.random.default_rng(0)
logs = rng.normal(size=3)
J = np.diag(np.exp(logs))
assert np.isclose(np.linalg.slogdet(J)[1], logs.sum())
detail = "per channel: log |dy/dx| = log-scale; the layer adds sum of log-scales per position"
"""

_LU = """
import scipy.linalg
rng = np.random.default_rng(0)
for c in (2, 3, 8):
    W = np.linalg.qr(rng.normal(size=(c, c)))[0] + 0.1 * rng.normal(size=(c, c))
    P, L, U = scipy.linalg.lu(W)
    s = np.diag(U)
    assert np.allclose(P @ L @ U, W) and np.allclose(np.diag(L), 1)
    hw = 4 * 4                                       # positions of a 4 x 4 feature map
    assert np.isclose(hw * np.sum(np.log(np.abs(s))), hw * np.linalg.slogdet(W)[1])
detail = "W = P L (U + diag s): log |det W| = sum log |s| (slogdet agrees for C = 2, 3, 8)"
"""

_REVERSE = """
for d in (2, 5):
    P = np.eye(d)[::-1]
    assert abs(abs(np.linalg.det(P)) - 1) < 1e-12
detail = "a permutation has |det| = 1: it adds nothing to log p"
"""

_CNF = """
import scipy.linalg
A = sp.Matrix(2, 2, sp.symbols("a11 a12 a21 a22", real=True))
tt = sp.Symbol("t", positive=True)
# Jacobi's formula: d/dt log det exp(tA) = tr(A), so log p(z(t)) = log p(z(0)) - t tr(A)
rng = np.random.default_rng(0)
An = rng.normal(size=(3, 3))
for tv in (0.3, 1.0):
    assert np.isclose(np.linalg.slogdet(scipy.linalg.expm(tv * An))[1], tv * np.trace(An))
eps = sp.Matrix(sp.symbols("e1 e2", real=True))
quad_form = sp.expand((eps.T * A * eps)[0])
# Hutchinson: E[e^T A e] = tr A for E[e e^T] = I (Gaussian or Rademacher e)
expected = quad_form.subs({eps[0] ** 2: 1, eps[1] ** 2: 1}).subs({eps[0]: 0, eps[1]: 0})
assert sp.simplify(expected - A.trace()) == 0, expected
e = rng.choice([-1.0, 1.0], size=(200000, 3))
est = np.einsum("ni,ij,nj->n", e, An, e)
assert abs(est.mean() - np.trace(An)) < 5 * est.std() / np.sqrt(len(e))
detail = f"expm: log det = t tr A; Hutchinson {est.mean():.4f} vs tr A {np.trace(An):.4f}"
"""


def _layers(items: tuple[ir.FlowItem, ...]) -> list[ir.Layer]:
    out: list[ir.Layer] = []
    for item in items:
        out += _layers(item.body) if isinstance(item, ir.Repeat) else [item]
    return out


def _names(model: CheckedModel) -> list[str]:
    names: list[str] = []
    for flow in model.flows.values():
        for layer in _layers(flow.body):
            if layer.name not in names:
                names.append(layer.name)
    return names


_LAYER_STEPS = {
    "affine_coupling": (
        "y_a = x_a, y_b = x_b * exp(s(x_a)) + t(x_a): dy/dx is lower triangular, so "
        "log|det J| = sum s(x_a)",
        r"\frac{\partial y}{\partial x} = \begin{pmatrix}I & 0\\ \ast & "
        r"\mathrm{diag}\,e^{s(x_a)}\end{pmatrix},\ \log|\det J| = \textstyle\sum s(x_a)",
        "the determinant of a triangular matrix is the product of its diagonal; s and t "
        "need not be invertible",
        "Dinh et al. 2017, eqs. 4-6",
        ("sympy", _COUPLING),
    ),
    "actnorm": (
        "y = exp(s) x + b per channel: log|det J| = (positions) * sum_c s_c",
        r"\log|\det J| = h\,w\textstyle\sum_c s_c",
        "a diagonal Jacobian",
        "Kingma & Dhariwal 2018, table 1",
        ("sympy", _ACTNORM),
    ),
    "invconv": (
        "W = P L (U + diag(s)) with P a permutation, L unit lower, U strictly upper: "
        "log|det W| = sum log|s|, times the number of positions",
        r"\log|\det W| = \textstyle\sum_c\log|s_c|",
        "det P = +-1, det L = 1, det(U + diag s) = prod s (triangular factors)",
        "Kingma & Dhariwal 2018, sec. 3.2",
        ("numeric", _LU),
    ),
    "reverse": (
        "reversing the coordinates permutes them: log|det J| = 0",
        r"\log|\det P| = 0",
        "a permutation matrix is orthogonal",
        "Dinh et al. 2017, sec. 3.5",
        ("numeric", _REVERSE),
    ),
    "cnf": (
        "dz/dt = v(z, t): d log p(z(t))/dt = -tr(dv/dz); tr estimated by E[e^T (dv/dz) e] "
        "(Hutchinson) when trace = hutchinson",
        r"\frac{d\log p(z(t))}{dt} = -\mathrm{tr}\frac{\partial v}{\partial z},\ "
        r"\mathrm{tr}A = \mathbb E[\epsilon^\top A\epsilon]",
        "the instantaneous change of variables (Jacobi's formula for the flow map's "
        "determinant); E[e e^T] = I makes the quadratic form unbiased",
        "Chen et al. 2018, Theorem 1; Grathwohl et al. 2019; Hutchinson 1989",
        ("sympy", _CNF),
    ),
}


def flow_steps(model: CheckedModel) -> tuple[list[str], list[Topic]]:
    """The setup lines and topics of a flow model (module docstring)."""
    change = Topic("the change of variables")
    change.step(
        "x = f(z), z ~ p_Z: log p(x) = log p_Z(f^-1(x)) + log|det d f^-1/dx| "
        "= log p_Z(z) - sum_layers log|det J_l|",
        r"\log p(x) = \log p_Z(z) - \textstyle\sum_l\log|\det J_l|",
        "the density of an invertible image; the chain rule makes the log-determinants add",
        "Dinh et al. 2017, eq. 3",
        ("numeric", _CHANGE),
    )
    layers = Topic("the log-determinant of each declared layer")
    for name in _names(model):
        if name in _LAYER_STEPS:
            layers.step(*_LAYER_STEPS[name])
    return [], [change] + ([layers] if layers.steps else [])
