"""Steps shared by the diffusion models: the eps / x0 / v / score parameterisations of the
network and the weight each puts on the eps error, and DDIM's non-Markovian family with the
chain's marginals.

References: Ho et al. 2020; Salimans & Ho 2022 (v-prediction, appendix D); Kingma et al. 2021
(weighting by SNR); Song, Meng & Ermon 2021 (DDIM, eqs. 7 and 12).
"""

from __future__ import annotations

from gendsl.symbolic.steps.model import Topic

__all__ = ["ddim_step", "parameterisations"]

_PARAMS = """
A, S = sp.symbols("a s", positive=True)
x0, eps, xt, vel = sp.symbols("x0 epsilon x_t v", real=True)
sol = sp.solve([sp.Eq(xt, A * x0 + S * eps), sp.Eq(vel, A * eps - S * x0)], [x0, eps], dict=True)
sol = sol[0]
assert sp.simplify(sol[x0] - (A * xt - S * vel) / (A**2 + S**2)) == 0
assert sp.simplify(sol[eps] - (S * xt + A * vel) / (A**2 + S**2)) == 0
de = sp.Symbol("delta_eps", real=True)            # eps_hat - eps at fixed x_t
d_x0 = -S / A * de                                # x0_hat = (x_t - s eps_hat) / a
d_v = A * de - S * d_x0
d_score = -de / S
weights = {"eps": 1, "x0": (d_x0 / de) ** 2, "v": (d_v / de) ** 2, "score": (d_score / de) ** 2}
assert sp.simplify(weights["x0"] - S**2 / A**2) == 0
assert sp.simplify(weights["v"] - (A**2 + S**2) ** 2 / A**2) == 0
assert sp.simplify(weights["score"] - 1 / S**2) == 0
detail = "x0, eps from (x_t, v) solved; weights s^2/a^2, (a^2 + s^2)^2/a^2, 1/s^2"
"""

_DDIM = """
# x_(k-1) = sqrt(abar_(k-1)) x0 + sqrt(1 - abar_(k-1) - sig^2) eps_k + sig z keeps the marginals
a1, sig2 = sp.symbols("abar_prev sigma2", positive=True)
x0, e, z = sp.symbols("x0 epsilon z", real=True)
x_prev = sp.sqrt(a1) * x0 + sp.sqrt(1 - a1 - sig2) * e + sp.sqrt(sig2) * z
var = sp.expand(x_prev.coeff(e) ** 2 + x_prev.coeff(z) ** 2)
assert sp.simplify(var - (1 - a1)) == 0 and x_prev.coeff(x0) == sp.sqrt(a1)
# sigma^2 = beta_tilde_k (eta = 1) gives back the DDPM posterior mean, at every k of the schedule
ks = np.arange(2, len(abar) + 1)
prev, cur = abar[ks - 2], abar[ks - 1]
bk = 1 - cur / prev
tilde = (1 - prev) / (1 - cur) * bk
coef_xk = np.sqrt(1 - prev - tilde) / np.sqrt(1 - cur)
coef_x0 = np.sqrt(prev) - coef_xk * np.sqrt(cur)
assert np.allclose(coef_xk, np.sqrt(1 - bk) * (1 - prev) / (1 - cur), rtol=1e-8)
assert np.allclose(coef_x0, np.sqrt(prev) * bk / (1 - cur), rtol=1e-6, atol=1e-12)
detail = f"eta = 1 is DDPM's posterior at k = 2..{len(abar)}; eta = 0 is deterministic"
"""


def parameterisations(kind: str, a: str, s: str) -> Topic:
    """The topic relating the network's ``kind`` (eps, x0, velocity, score) to eps, with the
    kernel's mean scale ``a`` and noise scale ``s`` named as the spec's process writes them."""
    kind = {"velocity": "v"}.get(kind, kind)
    weight = {
        "eps": "1",
        "x0": f"{s}^2 / {a}^2 = 1/SNR",
        "v": f"({a}^2 + {s}^2)^2 / {a}^2",
        "score": f"1 / {s}^2",
    }.get(kind, "1")
    topic = Topic("the network's parameterisation")
    topic.step(
        f"x_t = {a} x0 + {s} eps; x0 = ({a} x_t - {s} v)/({a}^2 + {s}^2), "
        f"v = {a} eps - {s} x0, score = -eps/{s}: the network predicts {kind}, and "
        f"||{kind}_hat - {kind}||^2 = {weight} * ||eps_hat - eps||^2",
        r"\|\hat x_0 - x_0\|^2 = \tfrac{s^2}{a^2}\|\hat\epsilon-\epsilon\|^2,\ "
        r"\|\hat v - v\|^2 = \tfrac{(a^2+s^2)^2}{a^2}\|\hat\epsilon-\epsilon\|^2,\ "
        r"\|\hat s - \nabla\log p\|^2 = \tfrac1{s^2}\|\hat\epsilon-\epsilon\|^2",
        "each target is an affine function of (x_t, eps) at fixed t: solve the 2 x 2 system; "
        "the errors scale by the derivative of the map",
        "Ho et al. 2020; Salimans & Ho 2022, appendix D; Kingma et al. 2021",
        ("sympy", _PARAMS),
    )
    return topic


def ddim_step(topic: Topic) -> None:
    """Append DDIM's non-Markovian family (needs ``abar`` bound by the setup)."""
    topic.step(
        "q_sigma(x_(k-1) | x_k, x_0) = N(sqrt(abar_(k-1)) x_0 + sqrt(1 - abar_(k-1) - "
        "sigma_k^2) (x_k - sqrt(abar_k) x_0)/sqrt(1 - abar_k), sigma_k^2) has the chain's "
        "marginals q(x_k | x_0) for every sigma; sigma_k^2 = eta^2 beta_tilde_k, eta = 1 is "
        "DDPM, eta = 0 the deterministic DDIM sampler",
        r"q_\sigma(x_{k-1}\mid x_k,x_0) = \mathcal N\Big(\sqrt{\bar\alpha_{k-1}}x_0 + "
        r"\sqrt{1-\bar\alpha_{k-1}-\sigma_k^2}\,\tfrac{x_k-\sqrt{\bar\alpha_k}x_0}"
        r"{\sqrt{1-\bar\alpha_k}},\ \sigma_k^2\Big)",
        "a non-Markovian forward process: given x_0, (x_k - sqrt(abar_k) x_0)/sqrt(1 - abar_k) "
        "is standard normal, so the variances add up to 1 - abar_(k-1)",
        "Song, Meng & Ermon 2021, eqs. 7 and 12",
        ("sympy", _DDIM),
    )
