"""Stepwise derivation for a diffusion model declared by a Gaussian chain
``x[k] ~ Normal(sqrt(1 - beta[k]) x[k-1], sqrt(beta[k]))``: the marginal q(x_k | x_0) by
induction, the posterior q(x_{k-1} | x_k, x_0) for the spec's own β schedule, the ELBO's
L_T + Σ L_{k-1} + L_0 and how L_simple comes from it.

References: Ho, Jain & Abbeel 2020, "Denoising Diffusion Probabilistic Models" (eqs. 2-14);
Sohl-Dickstein et al. 2015; Bishop 2006, "Pattern Recognition and Machine Learning", eq. 2.116.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import sympy as sp

from gendsl.symbolic.expr import to_text
from gendsl.symbolic.steps.kl import KL_STEPS
from gendsl.symbolic.steps.model import Topic, binding
from gendsl.symbolic.steps.parameterisation import ddim_step, parameterisations

if TYPE_CHECKING:
    from gendsl.symbolic.chain import ChainKernel

__all__ = ["chain_steps"]

HELPERS = """
betas = np.asarray(sp.lambdify(k, beta, "numpy")(np.arange(1, K + 1, dtype=float)), float)
betas = np.broadcast_to(betas, (K,)).copy()
abar = np.cumprod(1 - betas)
abar_prev = np.concatenate([[1.0], abar[:-1]])
ab1, b = sp.symbols("abar_prev beta_k", positive=True)   # abar_{k-1}, beta_k
ab = ab1 * (1 - b)                                         # abar_k
"""

_INDUCTION = """
x0, e1, e2 = sp.symbols("x_0 epsilon_1 epsilon_2", real=True)
prev = sp.sqrt(ab1) * x0 + sp.sqrt(1 - ab1) * e1           # hypothesis at k - 1
step = sp.expand(sp.sqrt(1 - b) * prev + sp.sqrt(b) * e2)  # one chain step
mean = step.coeff(x0)
var = sp.expand(step.coeff(e1) ** 2 + step.coeff(e2) ** 2)  # independent unit noises
assert sp.simplify(mean**2 - ab) == 0 and sp.simplify(var - (1 - ab)) == 0, (mean, var)
v = np.zeros(K + 1)
for i in range(K):                                          # this schedule, step by step
    v[i + 1] = (1 - betas[i]) * v[i] + betas[i]
assert np.allclose(v[1:], 1 - abar, rtol=0, atol=1e-12)
assert np.isclose(np.prod(1 - betas), abar_K_shown, rtol=1e-5), abar_K_shown
detail = f"Var recursion = 1 - abar_k for k = 1..{K}; abar_K = {abar[-1]:.6g}"
"""

_POSTERIOR = """
y, xk, x0 = sp.symbols("x_prev x_k x_0", real=True)
log_joint = -((xk - sp.sqrt(1 - b) * y) ** 2) / (2 * b)
log_joint -= (y - sp.sqrt(ab1) * x0) ** 2 / (2 * (1 - ab1))
mu = (sp.sqrt(ab1) * b * x0 + sp.sqrt(1 - b) * (1 - ab1) * xk) / (1 - ab)
var = (1 - ab1) * b / (1 - ab)
assert sp.simplify(sp.diff(log_joint + (y - mu) ** 2 / (2 * var), y)) == 0
# this schedule: conditioning the joint Gaussian of (x_{k-1}, x_k) given x_0 (Bishop eq. 2.116)
c, vp = np.sqrt(1 - betas[1:]), 1 - abar_prev[1:]
cov12, var2 = c * vp, c**2 * vp + betas[1:]
tilde = (1 - abar_prev[1:]) * betas[1:] / (1 - abar[1:])
assert np.allclose(vp - cov12**2 / var2, tilde, rtol=1e-10, atol=0)
coef_xk = np.sqrt(1 - betas[1:]) * (1 - abar_prev[1:]) / (1 - abar[1:])
assert np.allclose(cov12 / var2, coef_xk, rtol=1e-10)
detail = f"beta_tilde_k for k = 2..{K} agrees with Gaussian conditioning"
"""

_VALUES = """
for i, bt, c0, ck in shown:                                # the numbers the step prints
    vp = 1 - np.prod(1 - betas[: i - 1])                   # Var[x_(k-1) | x_0]
    cov, var_k = np.sqrt(1 - betas[i - 1]) * vp, (1 - betas[i - 1]) * vp + betas[i - 1]
    assert np.isclose(vp - cov**2 / var_k, bt, rtol=1e-5), (i, bt)
    assert np.isclose(cov / var_k, ck, rtol=1e-5), (i, ck)
    c0_true = np.sqrt(1 - vp) - cov / var_k * np.sqrt(1 - var_k)  # E[x_(k-1)] - ck E[x_k]
    assert np.isclose(c0_true, c0, rtol=1e-5), (i, c0)
detail = f"the printed values at k = {', '.join(str(s[0]) for s in shown)}"
"""

_FACTOR = """
rng = np.random.default_rng(0)
def lognorm(z, mean, var):
    return -0.5 * np.log(2 * np.pi * var) - (z - mean) ** 2 / (2 * var)
x = np.empty(K + 1)
x[0] = 0.7
for i in range(1, K + 1):
    x[i] = np.sqrt(1 - betas[i - 1]) * x[i - 1] + np.sqrt(betas[i - 1]) * rng.standard_normal()
forward = lognorm(x[1:], np.sqrt(1 - betas) * x[:-1], betas).sum()
ks = np.arange(2, K + 1)                                   # posterior factors, k = 2..K
pmean = (np.sqrt(abar_prev[ks - 1]) * betas[ks - 1] * x[0]
         + np.sqrt(1 - betas[ks - 1]) * (1 - abar_prev[ks - 1]) * x[ks]) / (1 - abar[ks - 1])
pvar = (1 - abar_prev[ks - 1]) * betas[ks - 1] / (1 - abar[ks - 1])
backward = lognorm(x[K], np.sqrt(abar[-1]) * x[0], 1 - abar[-1])
backward += lognorm(x[ks - 1], pmean, pvar).sum()
assert abs(forward - backward) < 1e-8 * abs(forward) + 1e-8, (forward, backward)
detail = f"log q(x_1:K | x_0) both ways on a sampled path: {forward:.10g} = {backward:.10g}"
"""


_EPS = """
xk, eps, epshat = sp.symbols("x_k epsilon epsilon_hat", real=True)
x0_of = (xk - sp.sqrt(1 - ab) * eps) / sp.sqrt(ab)
mu = (sp.sqrt(ab1) * b * x0_of + sp.sqrt(1 - b) * (1 - ab1) * xk) / (1 - ab)
assert sp.simplify(mu - (xk - b / sp.sqrt(1 - ab) * eps) / sp.sqrt(1 - b)) == 0
mu_theta = (xk - b / sp.sqrt(1 - ab) * epshat) / sp.sqrt(1 - b)
sig2 = sp.Symbol("sigma_k2", positive=True)
L = sp.simplify((mu - mu_theta) ** 2 / (2 * sig2))
lam = b**2 / (2 * sig2 * (1 - b) * (1 - ab))
assert sp.simplify(L - lam * (eps - epshat) ** 2) == 0, L
tilde = (1 - abar_prev[1:]) * betas[1:] / (1 - abar[1:])
lam_k = betas[1:] ** 2 / (2 * tilde * (1 - betas[1:]) * (1 - abar[1:]))
detail = f"lambda_k (sigma_k^2 = beta_tilde_k) from {lam_k.min():.4g} to {lam_k.max():.4g}"
"""


def _at(values: np.ndarray, ks: list[int]) -> str:
    return ", ".join(f"k = {i}: {values[i - 1]:.6g}" for i in ks)


def chain_steps(kernel: ChainKernel, *, predict: str = "eps") -> tuple[list[str], list[Topic]]:
    """The setup lines and topics of a chain kernel (module docstring, and DDIM's
    non-Markovian family, which every chain's samplers may use); ``predict`` is what the
    network predicts."""
    K, beta = kernel.K, kernel.beta
    x = kernel.var
    betas, abar = kernel.betas, kernel.alpha_bar
    abar_prev = np.concatenate([[1.0], abar[:-1]])
    tilde = (1 - abar_prev) * betas / (1 - abar)
    c0 = np.sqrt(abar_prev) * betas / (1 - abar)
    ck = np.sqrt(1 - betas) * (1 - abar_prev) / (1 - abar)
    shown = sorted({min(2, K), max(1, K // 2), K})
    setup = [binding("k", kernel.k), binding("beta", beta), binding("K", K)]
    setup += [binding("abar_K_shown", float(f"{abar[-1]:.6g}")), HELPERS.strip()]
    table = [[i, *(float(f"{v[i - 1]:.6g}") for v in (tilde, c0, ck))] for i in shown]
    setup.append(f"shown = {table!r}")
    marginal = Topic(f"q({x}_k | {x}_0) by induction")
    marginal.step(
        f"q({x}_k | {x}_(k-1)) = N(sqrt(1 - beta_k) {x}_(k-1), beta_k), "
        f"beta_k = {to_text(beta)}, k = 1..{K}",
        rf"q({x}_k\mid {x}_{{k-1}}) = \mathcal N(\sqrt{{1-\beta_k}}\,{x}_{{k-1}},\ \beta_k),"
        rf"\ \beta_k = {sp.latex(beta)}",
        "the declared chain",
    )
    marginal.step(
        f"q({x}_k | {x}_0) = N(sqrt(abar_k) {x}_0, (1 - abar_k) I), abar_k = prod_(i<=k) "
        f"(1 - beta_i); here abar_K = {abar[-1]:.6g}",
        rf"q({x}_k\mid {x}_0) = \mathcal N(\sqrt{{\bar\alpha_k}}\,{x}_0, (1-\bar\alpha_k)I)",
        "induction on k: a Gaussian step of a Gaussian is Gaussian; the mean coefficient "
        "multiplies by sqrt(1 - beta_k), the variance v_k = (1 - beta_k) v_(k-1) + beta_k",
        "Ho et al. 2020, eq. 4",
        ("sympy", _INDUCTION),
    )
    posterior = Topic(f"the posterior q({x}_(k-1) | {x}_k, {x}_0)")
    posterior.step(
        f"q({x}_(k-1) | {x}_k, {x}_0) = N(mu_tilde_k, beta_tilde_k I), beta_tilde_k = "
        f"(1 - abar_(k-1)) / (1 - abar_k) beta_k, mu_tilde_k = sqrt(abar_(k-1)) beta_k / "
        f"(1 - abar_k) {x}_0 + sqrt(1 - beta_k) (1 - abar_(k-1)) / (1 - abar_k) {x}_k",
        r"\tilde\beta_k = \frac{1-\bar\alpha_{k-1}}{1-\bar\alpha_k}\beta_k,\ "
        r"\tilde\mu_k = \frac{\sqrt{\bar\alpha_{k-1}}\beta_k}{1-\bar\alpha_k}x_0 + "
        r"\frac{\sqrt{1-\beta_k}(1-\bar\alpha_{k-1})}{1-\bar\alpha_k}x_k",
        "Bayes: q(x_(k-1) | x_k, x_0) is proportional to q(x_k | x_(k-1)) q(x_(k-1) | x_0); "
        "complete the square in x_(k-1)",
        "Ho et al. 2020, eqs. 6-7",
        ("sympy", _POSTERIOR),
    )
    posterior.step(
        f"for this schedule: beta_tilde_k at {_at(tilde, shown)}; mu_tilde_k = c0_k {x}_0 + "
        f"ck_k {x}_k with c0 at {_at(c0, shown)} and ck at {_at(ck, shown)}",
        rf"\tilde\beta_k,\ \tilde\mu_k\ \text{{for the declared }}\beta_k = {sp.latex(beta)}",
        "the formula above evaluated with the spec's beta_k (beta_tilde_1 = 0: x_0 is known)",
        "Bishop 2006, eq. 2.116 (Gaussian conditioning, the check)",
        ("numeric", _VALUES),
    )
    elbo = Topic("the ELBO and L_simple")
    elbo.step(
        f"q({x}_1:K | {x}_0) = q({x}_K | {x}_0) prod_(k>=2) q({x}_(k-1) | {x}_k, {x}_0), so "
        "-log p(x_0) <= E_q[L_K + sum_(k>=2) L_(k-1) + L_0], L_K = KL(q(x_K|x_0) || p(x_K)), "
        "L_(k-1) = KL(q(x_(k-1)|x_k,x_0) || p_theta(x_(k-1)|x_k)), L_0 = -log p_theta(x_0|x_1)",
        r"-\log p(x_0)\le\mathbb E_q\big[L_K + \textstyle\sum_{k\ge2}L_{k-1} + L_0\big]",
        "Jensen on log E_q[p(x_0:K)/q(x_1:K|x_0)], the Markov chain reversed by Bayes' rule "
        "given x_0",
        "Sohl-Dickstein et al. 2015; Ho et al. 2020, eq. 5",
        ("numeric", _FACTOR),
    )
    claim, latex, rule, check = KL_STEPS[("Normal", "Normal")]
    elbo.step(
        claim + "; equal variances: (m1 - m2)^2 / (2 s^2)",
        latex,
        rule,
        "Ho et al. 2020, eq. 8",
        check,
    )
    elbo.step(
        "mu_tilde_k = (x_k - beta_k / sqrt(1 - abar_k) eps) / sqrt(1 - beta_k); with "
        "mu_theta of the same form in eps_hat, L_(k-1) = lambda_k ||eps - eps_hat||^2, "
        "lambda_k = beta_k^2 / (2 sigma_k^2 (1 - beta_k)(1 - abar_k)); L_simple sets "
        "lambda_k = 1",
        r"L_{k-1} = \frac{\beta_k^2}{2\sigma_k^2(1-\beta_k)(1-\bar\alpha_k)}"
        r"\|\epsilon - \hat\epsilon_\theta\|^2,\quad L_{\rm simple} = "
        r"\mathbb E\|\epsilon - \hat\epsilon_\theta\|^2",
        "substitute x_0 = (x_k - sqrt(1 - abar_k) eps) / sqrt(abar_k) into mu_tilde_k",
        "Ho et al. 2020, eqs. 10-14",
        ("sympy", _EPS),
    )
    ddim_step(posterior)
    return setup, [
        marginal,
        posterior,
        elbo,
        parameterisations(predict, "sqrt(abar_k)", "sqrt(1 - abar_k)"),
    ]
