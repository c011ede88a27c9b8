"""Stepwise derivation for a latent-variable model: the ELBO in both forms (from Jensen and
from log p(x) - KL(q || p(z|x))), the reparameterisation of each Gaussian guide site and why
its gradient is unbiased, each KL term in closed form (derived in its check), the β-weighted
bound, IWAE's L_k and its monotonicity, and VQ-VAE's straight-through and codebook terms.

The identities are checked on a conjugate stand-in where every quantity has a closed form:
z ~ N(0, 1), x | z ~ N(z, sx^2) and a Gaussian q(z | x) that is not the posterior.

References: Kingma & Welling 2014; Rezende, Mohamed & Wierstra 2014; Higgins et al. 2017;
Burda, Grosse & Salakhutdinov 2016 (Theorem 1); van den Oord et al. 2017; Bengio et al. 2013.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gendsl.families.text import option
from gendsl.symbolic.steps.kl import KL_STEPS
from gendsl.symbolic.steps.model import Topic

if TYPE_CHECKING:
    from gendsl.ir import CheckedModel

__all__ = ["latent_steps"]

HELPERS = """
from scipy.stats import norm
# the conjugate stand-in: z ~ N(0, 1), x | z ~ N(z, sx^2), q(z | x) = N(mq, sq^2)
sx, xobs, mq, sq = 0.5, 1.3, 0.4, 0.7
log_px = norm(0, np.sqrt(1 + sx**2)).logpdf(xobs)
post_m, post_s = xobs / (1 + sx**2), np.sqrt(sx**2 / (1 + sx**2))
def kl_gauss(m1, s1, m2, s2):
    return np.log(s2 / s1) + (s1**2 + (m1 - m2) ** 2) / (2 * s2**2) - 0.5
e_log_lik = -0.5 * np.log(2 * np.pi * sx**2) - ((xobs - mq) ** 2 + sq**2) / (2 * sx**2)
e_log_prior = -0.5 * np.log(2 * np.pi) - (mq**2 + sq**2) / 2
entropy_q = 0.5 * np.log(2 * np.pi * np.e * sq**2)
def log_weights(z):
    return norm(z, sx).logpdf(xobs) + norm(0, 1).logpdf(z) - norm(mq, sq).logpdf(z)
"""

_ELBO_GAP = """
elbo = e_log_lik + e_log_prior + entropy_q         # E_q log p(x, z) - E_q log q(z | x)
gap = kl_gauss(mq, sq, post_m, post_s)              # KL(q(z | x) || p(z | x))
assert abs(elbo + gap - log_px) < 1e-12 and gap > 0, (elbo, gap, log_px)
rng = np.random.default_rng(0)
lw = log_weights(rng.normal(mq, sq, 400000))
assert abs(lw.mean() - elbo) < 5 * lw.std() / np.sqrt(lw.size)          # E_q log w = ELBO
w = np.exp(lw - lw.max())
assert abs(np.log(w.mean()) + lw.max() - log_px) < 5 * w.std() / w.mean() / np.sqrt(w.size)
detail = f"conjugate stand-in: ELBO {elbo:.6f} + KL {gap:.6f} = log p(x) {log_px:.6f}"
"""

_TWO_FORMS = """
form1 = e_log_lik + e_log_prior + entropy_q
form2 = e_log_lik - kl_gauss(mq, sq, 0.0, 1.0)      # reconstruction - KL(q || p(z))
assert abs(form1 - form2) < 1e-12, (form1, form2)
detail = f"both forms = {form1:.6f}"
"""

_REPARAM = """
mu, eps = sp.Symbol("mu", real=True), sp.Symbol("epsilon", real=True)
sigma = sp.Symbol("sigma", positive=True)
phi = sp.exp(-eps**2 / 2) / sp.sqrt(2 * sp.pi)
E = lambda e: sp.integrate(sp.expand(e) * phi, (eps, -sp.oo, sp.oo))
f = lambda z: z**4                                   # any smooth f; here one with moments
value = E(f(mu + sigma * eps))
z = sp.Symbol("z")
df = sp.diff(f(z), z)
assert sp.simplify(E(df.subs(z, mu + sigma * eps)) - sp.diff(value, mu)) == 0
assert sp.simplify(E(df.subs(z, mu + sigma * eps) * eps) - sp.diff(value, sigma)) == 0
rng = np.random.default_rng(0)
e = rng.standard_normal(400000)
g = 4 * (0.3 + 0.8 * e) ** 3 * e                      # the pathwise gradient in sigma
exact = float(sp.diff(value, sigma).subs({mu: 0.3, sigma: 0.8}))
assert abs(g.mean() - exact) < 5 * g.std() / np.sqrt(e.size), (g.mean(), exact)
detail = f"d/dsigma E[z^4]: pathwise Monte Carlo {g.mean():.4f} vs exact {exact:.4f}"
"""

_BETA = """
for beta in (BETA,):
    bound = e_log_lik - beta * kl_gauss(mq, sq, 0.0, 1.0)
    elbo = e_log_lik - kl_gauss(mq, sq, 0.0, 1.0)
    assert (bound <= elbo) == (beta >= 1), (bound, elbo)
detail = f"beta = {beta}: bound {bound:.6f}, ELBO {elbo:.6f}, log p(x) {log_px:.6f}"
"""

_IWAE = """
rng = np.random.default_rng(0)
def iwae(k, reps=20000):
    lw = log_weights(rng.normal(mq, sq, (reps, k)))
    m = lw.max(axis=1, keepdims=True)
    est = (np.log(np.exp(lw - m).mean(axis=1, keepdims=True)) + m)[:, 0]
    return est.mean(), est.std() / np.sqrt(reps)
(l1, e1), (lk, ek), (l2k, e2k) = iwae(1), iwae(KK), iwae(2 * KK)
elbo = e_log_lik + e_log_prior + entropy_q
assert abs(l1 - elbo) < 5 * e1, (l1, elbo)
assert l1 < lk - 3 * (e1 + ek) and lk <= l2k + 3 * (ek + e2k) and l2k <= log_px + 5 * e2k
detail = f"L_1 = {l1:.4f} <= L_KK = {lk:.4f} <= L_2KK = {l2k:.4f} <= log p(x) = {log_px:.4f}"
"""

_VQ = """
rng = np.random.default_rng(0)
codes, ze = rng.normal(size=(8, 2)), rng.normal(size=(500, 2))
d = ((ze[:, None, :] - codes[None]) ** 2).sum(-1)
k = d.argmin(1)                                       # quantise: the nearest code
assert np.all(d[np.arange(500), k] <= d.min(1) + 1e-15)
for j in np.unique(k):                                # the codebook term's minimiser: the mean
    pts = ze[k == j]
    loss = lambda e: ((pts - e) ** 2).sum()
    mean = pts.mean(0)
    assert all(loss(mean) <= loss(mean + dv) for dv in rng.normal(0, 1e-3, (20, 2)))
detail = "nearest-code assignment; the mean of each code's vectors minimises its codebook term"
"""


_ENUMERATE = """
from scipy.special import logsumexp
rng = np.random.default_rng(0)
logits, mus = rng.normal(size=10), rng.normal(size=10)
log_pc = logits - logsumexp(logits)
z = 0.37
direct = np.log(np.sum(np.exp(log_pc) * norm(mus, 1.0).pdf(z)))
assert abs(logsumexp(log_pc + norm(mus, 1.0).logpdf(z)) - direct) < 1e-12
cs = rng.choice(10, size=400000, p=np.exp(log_pc))
mc = norm(mus[cs], 1.0).pdf(z)
assert abs(mc.mean() - np.exp(direct)) < 5 * mc.std() / np.sqrt(cs.size)
detail = "logsumexp over the categories = the exact marginal; sampling c only estimates it"
"""


def _declared(model: CheckedModel) -> str:
    def site(s: object) -> str:
        given = f" | {', '.join(s.given)}" if s.given else ""
        return f"{s.name}{given} ~ {s.dist}"

    q = "; ".join(site(s) for s in model.guide)
    return "p: " + "; ".join(site(s) for s in model.sites) + (f"  q: {q}" if q else "")


def _enumerated(model: CheckedModel, topic: Topic) -> None:
    for name in option(model.loss, "enumerate", []) or []:
        children = [s.name for s in model.sites if name in s.given]
        topic.step(
            f"{name} is summed out exactly: log p({', '.join(children)}) = "
            f"log sum_{name} p({name}) p({', '.join(children)} | {name})",
            rf"\log p = \log\sum_{{{name}}} p({name})\,p(\cdot\mid {name})",
            "marginalisation over a finite set, computed with logsumexp (no Monte Carlo "
            "variance, no reparameterisation of a discrete variable needed)",
            "Obermeyer et al. 2019 (Pyro's enumeration)",
            ("numeric", _ENUMERATE),
        )


def _kl_topic(model: CheckedModel) -> Topic | None:
    guide = {s.name: s for s in model.guide}
    enumerated = set(option(model.loss, "enumerate", []) or [])
    pairs = []
    for s in model.sites:
        q = guide.get(s.name)
        if q is None or any(g in enumerated for g in s.given):
            continue
        if (q.dist, s.dist) in KL_STEPS and (q.dist, s.dist) not in pairs:
            pairs.append((q.dist, s.dist))
    if not pairs or option(model.loss, "kl", "analytic") == "mc":
        return None
    topic = Topic("each KL term in closed form")
    for pair in pairs:
        claim, latex, rule, check = KL_STEPS[pair]
        topic.step(claim, latex, rule, "Kingma & Welling 2014, appendix B", check)
    return topic


def _elbo_topic(model: CheckedModel) -> Topic:
    topic = Topic("the ELBO in both forms")
    topic.step(_declared(model), r"p(x, z),\ q(z\mid x)", "the declared sites and guide")
    topic.step(
        "log p(x) = E_q[log p(x, z) - log q(z | x)] + KL(q(z | x) || p(z | x)) >= ELBO; "
        "equivalently log p(x) = log E_q[p(x, z)/q(z | x)] >= E_q log[p(x, z)/q(z | x)]",
        r"\log p(x) = \underbrace{\mathbb E_q[\log p(x,z) - \log q(z\mid x)]}_{\rm ELBO} + "
        r"\mathrm{KL}(q(z\mid x)\,\|\,p(z\mid x))",
        "Bayes' rule inside E_q, and KL >= 0; or Jensen's inequality on the concave log",
        "Kingma & Welling 2014, eqs. 1-2",
        ("numeric", _ELBO_GAP),
    )
    topic.step(
        "ELBO = E_q[log p(x | z)] - KL(q(z | x) || p(z))",
        r"\mathrm{ELBO} = \mathbb E_q\log p(x\mid z) - \mathrm{KL}(q(z\mid x)\,\|\,p(z))",
        "log p(x, z) = log p(x | z) + log p(z): the prior term and the entropy make the KL",
        "Kingma & Welling 2014, eq. 3",
        ("numeric", _TWO_FORMS),
    )
    gaussian = [q.name for q in model.guide if q.dist == "Normal"]
    if gaussian:
        topic.step(
            f"{', '.join(gaussian)} = mu + sigma * eps, eps ~ N(0, I): "
            "grad E_q f(z) = E_eps grad f(mu + sigma eps), an unbiased estimate",
            r"\nabla_{\mu,\sigma}\mathbb E_{q}f(z) = \mathbb E_\epsilon\nabla_{\mu,\sigma}"
            r"f(\mu+\sigma\epsilon)",
            "the law of eps does not depend on (mu, sigma): differentiate under E_eps",
            "Kingma & Welling 2014, sec. 2.4; Rezende et al. 2014",
            ("sympy", _REPARAM),
        )
    _enumerated(model, topic)
    return topic


def _bound_topic(model: CheckedModel) -> Topic | None:
    loss = model.loss
    if loss.name == "iwae":
        k = int(option(loss, "k", 16))
        topic = Topic("the importance-weighted bound")
        topic.step(
            f"L_{k} = E log (1/{k}) sum_i p(x, z_i)/q(z_i | x), z_i ~ q iid; "
            f"ELBO = L_1 <= L_{k} <= L_{2 * k} <= log p(x)",
            rf"\mathcal L_{{{k}}} = \mathbb E\log\frac1{{{k}}}\sum_i\frac{{p(x,z_i)}}"
            r"{q(z_i\mid x)},\ \mathcal L_1\le\mathcal L_k\le\mathcal L_{2k}\le\log p(x)",
            "Jensen on the average of k importance weights; the average of k is the mean of "
            "its subsets' averages",
            "Burda et al. 2016, Theorem 1",
            ("numeric", _IWAE.replace("2KK", str(2 * k)).replace("KK", str(k))),
        )
        return topic
    beta = option(loss, "beta", 1)
    if loss.name == "elbo" and beta != 1:
        topic = Topic("the beta-weighted bound")
        topic.step(
            f"L_beta = E_q log p(x | z) - {beta} KL(q(z | x) || p(z)); for beta >= 1 it lies "
            "below the ELBO (KL >= 0)",
            rf"\mathcal L_\beta = \mathbb E_q\log p(x\mid z) - {beta}\,\mathrm{{KL}}",
            "the ELBO's second form with the KL weighted",
            "Higgins et al. 2017",
            ("numeric", _BETA.replace("BETA", repr(float(beta)))),
        )
        return topic
    return None


def _vq_topic() -> Topic:
    topic = Topic("the VQ-VAE objective")
    topic.step(
        "e = argmin_j ||z_e - c_j||; the decoder sees z_e + sg(e - z_e) (value e, gradient "
        "of z_e: straight-through); loss = ||x - dec(e)||^2 + ||sg(z_e) - e||^2 + "
        "beta ||z_e - sg(e)||^2; with ema the codebook moves to each code's mean",
        r"\mathcal L = \|x - \mathrm{dec}(e)\|^2 + \|\mathrm{sg}(z_e) - e\|^2 + "
        r"\beta\|z_e - \mathrm{sg}(e)\|^2",
        "nearest-neighbour quantisation has zero gradient, so the gradient is copied "
        "(Bengio et al. 2013); the codebook term is k-means' objective",
        "van den Oord et al. 2017, eq. 3 and appendix A.1",
        ("numeric", _VQ),
    )
    return topic


def latent_steps(model: CheckedModel) -> tuple[list[str], list[Topic]]:
    """The setup lines and topics of a latent-variable model (module docstring)."""
    if model.loss.name == "vq":
        return [HELPERS.strip()], [_vq_topic()]
    topics = [_elbo_topic(model), _kl_topic(model), _bound_topic(model)]
    return [HELPERS.strip()], [t for t in topics if t is not None]
