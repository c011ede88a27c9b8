"""Stepwise derivation for an energy-based model: the density and its score, Langevin
dynamics and its stationary law, the contrastive-divergence gradient, denoising score
matching = explicit score matching up to a constant, and sliced score matching's integration
by parts.

References: Hinton 2002; Roberts & Tweedie 1996 (Langevin); Hyvärinen 2005 (score matching);
Vincent 2011 (DSM); Song et al. 2019 (sliced score matching).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from gendsl.symbolic.steps.model import Topic

if TYPE_CHECKING:
    from gendsl.ir import CheckedModel

__all__ = ["energy_steps"]

_LANGEVIN = """
x = sp.Symbol("x", real=True)
E = sp.Function("E")(x)
p = sp.exp(-E)
# Fokker-Planck of dx = -E'(x) dt + sqrt(2) dw: dp/dt = d/dx(E' p) + d2p/dx2 = 0 at p = exp(-E)
assert sp.simplify(sp.diff(sp.diff(E, x) * p, x) + sp.diff(p, x, 2)) == 0
# the declared chain x' = x - h E'(x) + noise xi on E = c x^2/2 (curvature c, h c = 1/100) is
# AR(1) with a closed stationary variance; the target exp(-E/T) has variance T / c
h, noise = STEP, NOISE
c = 0.01 / h
T = noise**2 / (2 * h)
a = 1 - h * c
stationary = noise**2 / (1 - a**2)                  # = (T / c) / (1 - h c / 2) -> T / c
assert abs(stationary - T / c / (1 - h * c / 2)) < 1e-12 * T / c
rng = np.random.default_rng(0)
xs = np.zeros(20000)
for _ in range(2000):
    xs = a * xs + noise * rng.standard_normal(xs.size)
assert abs(xs.var() - stationary) < 5 * stationary * np.sqrt(2 / xs.size), xs.var()
detail = f"h = {h}, noise = {noise:.4g}: variance {xs.var():.4g} vs {stationary:.4g}"
"""

_CD = """
th, x = sp.symbols("theta x", real=True)
E = th * x**2 / 2                                   # an energy family with a closed Z
Z = sp.integrate(sp.exp(-E), (x, -sp.oo, sp.oo), conds="none")
nll = E + sp.log(Z)                                  # -log p_theta(x)
model_mean = sp.integrate(sp.diff(E, th) * sp.exp(-E) / Z, (x, -sp.oo, sp.oo), conds="none")
assert sp.simplify(sp.diff(nll, th) - (sp.diff(E, th) - model_mean)) == 0
detail = "d/dtheta [E + log Z] = dE/dtheta - E_model dE/dtheta (Gaussian energy)"
"""

_DSM = """
sig = SIGMA
vq = 1 + sig**2                                     # data N(0, 1), q(x~) = N(0, 1 + sigma^2)
def esm(a, b):      # E_q(x~) (a x~ + b + x~ / vq)^2
    return (a + 1 / vq) ** 2 * vq + b**2
def dsm(a, b):      # E (a x~ + b + (x~ - x) / sig^2)^2, x~ = x + sig eps
    # a x~ + b + eps / sig with x~ = x + sig eps: Var = (a)^2 + ... by components of (x, eps)
    cx, ce = a, a * sig + 1 / sig
    return cx**2 + ce**2 + b**2
gaps = [dsm(a, b) - esm(a, b) for a, b in ((0.0, 0.0), (-0.5, 0.3), (2.0, -1.0))]
assert max(gaps) - min(gaps) < 1e-9, gaps
rng = np.random.default_rng(0)
x, eps = rng.standard_normal(400000), rng.standard_normal(400000)
xt = x + sig * eps
mc = (-0.5 * xt + 0.3 + (xt - x) / sig**2) ** 2
assert abs(mc.mean() - dsm(-0.5, 0.3)) < 5 * mc.std() / np.sqrt(x.size)
detail = f"sigma = {sig}: DSM - ESM = {gaps[0]:.4f} for every linear score"
"""

_SSM = """
x = sp.Symbol("x", real=True)
a, b = sp.symbols("a b", real=True)
p = sp.exp(-x**2 / 2) / sp.sqrt(2 * sp.pi)            # data N(0, 1)
s = a * x + b                                           # a model score
E = lambda e: sp.integrate(sp.expand(e) * p, (x, -sp.oo, sp.oo))
esm = E((s - sp.diff(sp.log(p), x)) ** 2) / 2
ism = E(s**2 / 2 + sp.diff(s, x))                       # after integration by parts
assert sp.simplify(esm - ism - E(sp.diff(sp.log(p), x) ** 2) / 2) == 0
rng = np.random.default_rng(0)
A = rng.normal(size=(3, 3))                            # a Jacobian grad s
v = rng.standard_normal((200000, 3))
est = np.einsum("ni,ij,nj->n", v, A, v)
assert abs(est.mean() - np.trace(A)) < 5 * est.std() / np.sqrt(len(v))
detail = f"ESM = ISM + const; E[v^T A v] = {est.mean():.4f} vs tr A = {np.trace(A):.4f}"
"""


def _langevin(model: CheckedModel) -> tuple[float, float]:
    """The step h and noise of the model's Langevin sampler (noise sqrt(2 h) by default)."""
    sampler = model.sampler
    kwargs = sampler.kwargs if sampler is not None and sampler.name == "langevin" else {}
    h = float(kwargs.get("step") or 0.01)
    noise = kwargs.get("noise")
    return h, float(noise) if noise is not None else float(np.sqrt(2 * h))


def energy_steps(model: CheckedModel) -> tuple[list[str], list[Topic]]:
    """The setup lines and topics of an energy-based model (module docstring)."""
    topic = Topic("the energy, its sampler and its loss")
    topic.step(
        "p(x) = exp(-E(x)) / Z, grad_x log p(x) = -grad_x E(x) (Z does not depend on x)",
        r"p = e^{-E}/Z,\ \nabla_x\log p = -\nabla_x E",
        "the declared energy",
    )
    h, noise = _langevin(model)
    temperature = noise**2 / (2 * h)
    colder = "" if abs(temperature - 1) < 1e-12 else f" of exp(-E/T), T = {temperature:.4g}"
    topic.step(
        "dx = -grad E(x) dt + sqrt(2) dw leaves p = exp(-E)/Z invariant; the sampler's "
        f"x' = x - {h:g} grad E(x) + {noise:.4g} xi is the Euler step{colder} (Langevin "
        "dynamics with temperature T = noise^2 / (2 step); exact as step -> 0)",
        r"\partial_x(E'p) + \partial_x^2 p = 0\ \text{for}\ p\propto e^{-E}",
        "the Fokker-Planck equation's stationary solution; the Gaussian case of the chain "
        "is an AR(1) process with a closed variance",
        "Roberts & Tweedie 1996",
        ("sympy", _LANGEVIN.replace("STEP", repr(h)).replace("NOISE", repr(noise))),
    )
    loss = model.loss
    if loss.name == "contrastive_divergence":
        topic.step(
            "grad_theta [-log p_theta(x)] = grad_theta E(x) - E_model grad_theta E",
            r"\nabla_\theta(-\log p_\theta) = \nabla_\theta E - \mathbb E_{p_\theta}"
            r"\nabla_\theta E",
            "grad log Z = -E_model grad E (differentiate Z = int exp(-E)); the model "
            "expectation is estimated with the Langevin chain",
            "Hinton 2002",
            ("sympy", _CD),
        )
    elif loss.name == "dsm":
        sigma = loss.kwargs.get("sigma", 0.1)
        topic.step(
            f"E ||s(x~) - grad log q(x~ | x)||^2, x~ = x + {sigma} eps, equals "
            "E ||s(x~) - grad log q(x~)||^2 up to a constant",
            r"\mathbb E\|s(\tilde x) + (\tilde x - x)/\sigma^2\|^2 = "
            r"\mathbb E\|s(\tilde x) - \nabla\log q_\sigma(\tilde x)\|^2 + C",
            "expand both squares; the cross terms agree because "
            "grad q(x~) = int grad q(x~ | x) p(x) dx",
            "Vincent 2011, sec. 4.2",
            ("numeric", _DSM.replace("SIGMA", repr(float(sigma)))),
        )
    elif loss.name == "ssm":
        topic.step(
            "1/2 E||s - grad log p||^2 = E[1/2 ||s||^2 + tr grad s] + C, "
            "tr grad s = E_v[v^T (grad s) v]",
            r"\tfrac12\mathbb E\|s - \nabla\log p\|^2 = \mathbb E[\tfrac12\|s\|^2 + "
            r"\mathrm{tr}\nabla s] + C",
            "integration by parts moves the derivative off the unknown p; random projections "
            "estimate the trace without the full Jacobian",
            "Hyvärinen 2005, Theorem 1; Song et al. 2019",
            ("sympy", _SSM),
        )
    return [], [topic]
