"""Stepwise derivation for a flow-matching model: the declared conditional path, its target
velocity, the marginal velocity that transports the marginals (continuity equation), why the
conditional loss has the marginal loss's gradient, and the role of an optimal-transport
coupling.

References: Lipman et al. 2023 ("Flow Matching for Generative Modeling", Theorems 1-2); Liu et
al. 2023 (rectified flow); Tong et al. 2024 (OT-CFM, sec. 3.2); Albergo & Vanden-Eijnden 2023
(stochastic interpolants).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import sympy as sp

from gendsl.symbolic.expr import to_text
from gendsl.symbolic.steps.model import Topic, binding

if TYPE_CHECKING:
    from gendsl.ir import CheckedModel
    from gendsl.symbolic.path import PathKernel

__all__ = ["matching_steps"]

HELPERS = """
# the path x_t = alpha x0 + beta x1 + gamma w, with x0 ~ N(0, 1), x1 ~ N(mu1, s1^2), w ~ N(0, 1)
# independent: a Gaussian stand-in for which every expectation is closed
mu1, s1 = sp.Rational(3, 2), sp.Rational(1, 2)
mean_x = beta * mu1
var_x = alpha**2 + beta**2 * s1**2 + gamma**2
mean_u = d_beta * mu1
cov_xu = alpha * d_alpha + beta * d_beta * s1**2 + gamma * d_gamma
var_u = d_alpha**2 + d_beta**2 * s1**2 + d_gamma**2
"""

_VELOCITY = """
x0, x1, w = sp.symbols("x0 x1 w", real=True)
x_t = alpha * x0 + beta * x1 + gamma * w
u_t = d_alpha * x0 + d_beta * x1 + d_gamma * w
assert sp.simplify(sp.diff(x_t, t) - u_t) == 0
"""

_MARGINAL = """
x = sp.Symbol("x", real=True)
p = sp.exp(-(x - mean_x) ** 2 / (2 * var_x)) / sp.sqrt(2 * sp.pi * var_x)
m = mean_u + cov_xu / var_x * (x - mean_x)       # E[u_t | x_t = x], jointly Gaussian
residual = sp.diff(p, t) + sp.diff(m * p, x)
tv = [sp.Rational(1, 5), sp.Rational(1, 2), sp.Rational(4, 5)]
for xv in (-1, 0, sp.Rational(7, 3)):
    for tt in tv:
        r = residual.subs({x: xv, t: tt}).evalf(40)
        assert abs(r) < 1e-30, (xv, tt, r)
detail = "continuity residual 0 (to 1e-30) at 9 points (x, t), Gaussian ends"
"""

_GRADIENT = """
tt = sp.Rational(2, 5)
law = dict(mx=mean_x, vx=var_x, mu=mean_u, c=cov_xu, vu=var_u)
vals = {k: float(v.subs(t, tt)) for k, v in law.items()}
slope = vals["c"] / vals["vx"]
def l_cfm(a, b):   # E (a x + b - u)^2 over the joint law of (x_t, u_t)
    return (a**2 * (vals["vx"] + vals["mx"] ** 2) + 2 * a * b * vals["mx"] + b**2
            - 2 * a * (vals["c"] + vals["mx"] * vals["mu"]) - 2 * b * vals["mu"]
            + vals["vu"] + vals["mu"] ** 2)
def l_fm(a, b):    # E (a x + b - E[u | x])^2
    da, db = a - slope, b - (vals["mu"] - slope * vals["mx"])
    return da**2 * (vals["vx"] + vals["mx"] ** 2) + 2 * da * db * vals["mx"] + db**2
gaps = [l_cfm(a, b) - l_fm(a, b) for a, b in ((0, 0), (1.3, -0.2), (-2.0, 4.0))]
assert max(gaps) - min(gaps) < 1e-9 and min(gaps) >= -1e-12, gaps
detail = f"L_CFM - L_FM = {gaps[0]:.6f} = E Var(u_t | x_t) for every v, at t = {tt}"
"""

#: A minibatch of 256 pairs for the coupling checks: N(0, I) against N((3, 0), I), the
#: squared Euclidean cost M and uniform weights u.
_PAIRS = """
import ot
rng = np.random.default_rng(0)
x0, x1 = rng.normal(size=(256, 2)), rng.normal(size=(256, 2)) + np.array([3.0, 0.0])
M = ot.dist(x0, x1)
u = np.full(256, 1 / 256)
"""

_SB = _PAIRS + """
exact = float(np.sum(ot.emd(u, u, M) * M))
entropic = float(np.sum(ot.sinkhorn(u, u, M, reg=REG * M.max(), numItermax=5000) * M))
indep = float(M.mean())
assert exact <= entropic + 1e-9 and entropic <= indep + 1e-9, (exact, entropic, indep)
detail = f"E|x1 - x0|^2: OT {exact:.3f} <= entropic {entropic:.3f} <= independent {indep:.3f}"
"""

_OT = _PAIRS + """
plan = ot.emd(u, u, M)
ot_cost, indep = float(np.sum(plan * M)), float(np.mean(np.sum((x0 - x1) ** 2, axis=1)))
assert ot_cost <= indep + 1e-12, (ot_cost, indep)
detail = f"minibatch OT pairs: E|x1 - x0|^2 = {ot_cost:.3f} vs {indep:.3f} independent"
"""


_GAP = _PAIRS + """
import torch
from gendsl.objectives.ot_certified import certified_assignment
opt = float(np.sum(ot.emd(u, u, M) * M))
res = certified_assignment(torch.as_tensor(x0), torch.as_tensor(x1), tol=GAP)
cost = float(M[np.arange(256), res.cols.numpy()].mean())
assert res.bound <= opt + 1e-12 and opt <= cost <= opt / (1 - GAP) + 1e-12, (res, opt)
assert cost - opt <= res.gap + 1e-12 and res.gap <= GAP * cost, (res, opt)
detail = (f"certified: cost {cost:.4f}, LB {res.bound:.4f} <= OPT {opt:.4f}; "
          f"gap {res.gap / cost:.1e} <= {GAP}")
"""


def _ends(pk: PathKernel) -> str:
    at = {
        tv: [sp.simplify(e.subs(pk.t, tv)) for e in (pk.alpha, pk.beta, pk.gamma)] for tv in (0, 1)
    }
    return "; ".join(f"t = {tv}: ({', '.join(to_text(v) for v in at[tv])})" for tv in (0, 1))


def matching_steps(model: CheckedModel) -> tuple[list[str], list[Topic]]:
    """The setup lines and topics of a flow-matching model (module docstring)."""
    from gendsl.symbolic.path import path_velocity

    pk = path_velocity(model.path, model.lets)
    setup = [binding("t", pk.t)]
    setup += [binding(n, getattr(pk, n)) for n in ("alpha", "beta", "gamma")]
    setup += [binding(n, getattr(pk, n)) for n in ("d_alpha", "d_beta", "d_gamma")]
    setup.append(HELPERS.strip())
    topic = Topic("the conditional path, its velocity and the matching loss")
    topic.step(
        f"x_t = {to_text(pk.x_t)}; (alpha, beta, gamma) at {_ends(pk)}",
        rf"x_t = {sp.latex(pk.x_t)}",
        "the declared path: a linear interpolant of its ends and noise",
    )
    topic.step(
        f"u_t = d x_t / dt = {to_text(pk.u_t)}",
        rf"u_t = \frac{{dx_t}}{{dt}} = {sp.latex(pk.u_t)}",
        "differentiate the path in t with the ends and the noise held fixed",
        "Lipman et al. 2023, eq. 15; Tong et al. 2024",
        ("sympy", _VELOCITY),
    )
    topic.step(
        "the marginal velocity u_t(x) = E[u_t | x_t = x] solves dp_t/dt + div(p_t u_t) = 0, "
        "so dx/dt = u_t(x) carries p_0 to p_1",
        r"u_t(x) = \mathbb E[u_t\mid x_t = x],\ \partial_t p_t + \nabla\cdot(p_t u_t) = 0",
        "average the conditional continuity equations over the ends (checked for this path "
        "with Gaussian ends, where E[u_t | x_t] is linear)",
        "Lipman et al. 2023, Theorem 1",
        ("sympy", _MARGINAL),
    )
    topic.step(
        "E||v(x_t, t) - u_t||^2 = E||v(x_t, t) - u_t(x_t)||^2 + E Var(u_t | x_t): the "
        "conditional loss has the marginal loss's gradient in v",
        r"\mathcal L_{\rm CFM}(\theta) = \mathcal L_{\rm FM}(\theta) + C",
        "expand the square around E[u_t | x_t]; the cross term has mean zero",
        "Lipman et al. 2023, Theorem 2",
        ("numeric", _GRADIENT),
    )
    coupling = model.couple.coupling.name if model.couple is not None else "independent"
    if coupling == "schrodinger":
        topic.step(
            "(x0, x1) ~ schrodinger: the entropic optimal-transport plan, between exact OT and "
            "independent pairs in cost; with the Brownian-bridge noise it is the Schrodinger "
            "bridge's coupling",
            r"\pi_\varepsilon = \arg\min_\pi\mathbb E_\pi\|x_1-x_0\|^2 - \varepsilon H(\pi)",
            "Sinkhorn's algorithm (POT's sinkhorn) on each minibatch",
            "Tong et al. 2024, sec. 3.3; Cuturi 2013",
            ("numeric", _SB.replace("REG", "0.05")),
        )
    elif coupling != "independent":
        topic.step(
            f"(x0, x1) ~ {coupling}: pairs that minimise E|x1 - x0|^2 within each minibatch "
            "cross less, so the conditional velocities vary less given x_t (straighter paths)",
            r"\pi^* = \arg\min_\pi\mathbb E_\pi\|x_1 - x_0\|^2",
            "exact optimal transport of the minibatch (POT's emd)",
            "Tong et al. 2024, sec. 3.2; Pooladian et al. 2023",
            ("numeric", _OT),
        )
        checked = model.couple.checked if model.couple is not None else None
        value = checked.kwargs.get("gap") if checked is not None else None
        if value:
            topic.step(
                f"gap = {value:g}: each minibatch's pairing stops once a weak-duality lower "
                "bound LB <= OPT certifies cost - LB <= gap * cost, so its cost is at most "
                "OPT / (1 - gap)",
                r"\mathbb E_{\hat\pi}\|x_1-x_0\|^2 - \mathrm{LB} \le g\,"
                r"\mathbb E_{\hat\pi}\|x_1-x_0\|^2,\quad "
                r"\mathrm{LB} = \tfrac1B\textstyle\sum_i \beta^c_i + \tfrac1B\sum_j \beta_j"
                r" \le \mathrm{OPT}",
                "c-transform of the sparse solver's column potentials over all pairs",
                "Peyre & Cuturi 2019, Prop. 3.1; Schmitzer 2016",
                ("numeric", _GAP.replace("GAP", repr(float(value)))),
            )
    return setup, [topic]
