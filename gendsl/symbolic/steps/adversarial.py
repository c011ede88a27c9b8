"""Stepwise derivation for an adversarial model: the optimal discriminator D* = p/(p+q), the
value V(D*, G) = -log 4 + 2 JS(p || q), the non-saturating generator loss; for a Wasserstein
critic the Kantorovich–Rubinstein dual of W1 and the Lipschitz bound of the declared penalty.

References: Goodfellow et al. 2014, "Generative Adversarial Nets" (Prop. 1, Thm. 1);
Arjovsky, Chintala & Bottou 2017, "Wasserstein GAN"; Villani 2009, "Optimal Transport", Thm.
5.10 and Remark 6.5; Gulrajani et al. 2017 (gradient penalty); Miyato et al. 2018 (spectral
norm).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gendsl.families.text import opt_text, option
from gendsl.symbolic.steps.model import Topic

if TYPE_CHECKING:
    from gendsl.ir import CheckedModel

__all__ = ["adversarial_steps"]

HELPERS = """
from scipy.stats import norm
# two known 1-D densities standing in for p_data and p_g
p_data, p_g = norm(0.0, 1.0), norm(1.0, 1.5)
grid = np.linspace(-12, 12, 48001)
"""

_D_STAR = """
D, a, b = sp.symbols("D a b", positive=True)
value = a * sp.log(D) + b * sp.log(1 - D)        # the integrand of V at one x
crit = sp.solve(sp.diff(value, D), D)
assert crit == [a / (a + b)], crit
assert sp.simplify(sp.diff(value, D, 2).subs(D, a / (a + b)) + (a + b) ** 3 / (a * b)) == 0
# numerically: D* beats every other D on a grid of values, at several x
ds = np.linspace(1e-4, 1 - 1e-4, 20001)
for xv in (-2.0, 0.0, 0.5, 3.0):
    pa, pb = p_data.pdf(xv), p_g.pdf(xv)
    best = ds[np.argmax(pa * np.log(ds) + pb * np.log(1 - ds))]
    assert abs(best - pa / (pa + pb)) < 1e-4, (xv, best)
detail = "argmax over a grid of D = p/(p+q) at 4 points (N(0,1) vs N(1,1.5^2))"
"""

_JS = """
P, Q = sp.symbols("p q", positive=True)
lhs = P * sp.log(P / (P + Q)) + Q * sp.log(Q / (P + Q))
M = (P + Q) / 2
rhs = -sp.log(4) * M + P * sp.log(P / M) + Q * sp.log(Q / M)   # integrands; int M = 1
assert sp.simplify(sp.expand_log(lhs - rhs, force=True)) == 0
pa, pb = p_data.pdf(grid), p_g.pdf(grid)
v_star = np.trapezoid(pa * np.log(pa / (pa + pb)) + pb * np.log(pb / (pa + pb)), grid)
m = (pa + pb) / 2
js = 0.5 * np.trapezoid(pa * np.log(pa / m), grid) + 0.5 * np.trapezoid(pb * np.log(pb / m), grid)
assert abs(v_star - (-np.log(4) + 2 * js)) < 1e-8, (v_star, js)
detail = f"N(0,1) vs N(1,1.5^2): V(D*) = {v_star:.6f} = -log 4 + 2 JS, JS = {js:.6f}"
"""

_NONSAT = """
l = sp.Symbol("l", real=True)                     # the critic's logit, D = sigmoid(l)
D = 1 / (1 + sp.exp(-l))
saturating = sp.diff(sp.log(1 - D), l)
nonsat = sp.diff(-sp.log(D), l)
assert sp.limit(saturating, l, -sp.oo) == 0 and sp.limit(nonsat, l, -sp.oo) == -1
assert sp.simplify(saturating + D) == 0 and sp.simplify(nonsat + 1 - D) == 0
"""

_KR = """
import ot
rng = np.random.default_rng(0)
xs, ys = rng.normal(0.0, 1.0, 400), rng.normal(1.0, 1.5, 400)
cost = ot.dist(xs[:, None], ys[:, None], metric="euclidean")
w1 = ot.emd2(np.full(400, 1 / 400), np.full(400, 1 / 400), cost)
# the 1-D witness f' = sign(F_q - F_p) (integration by parts: E_p f - E_q f = int |F_p - F_q|)
pts = np.sort(np.concatenate([xs, ys]))
Fp = np.searchsorted(np.sort(xs), pts, side="right") / 400
Fq = np.searchsorted(np.sort(ys), pts, side="right") / 400
slope = np.sign(Fq - Fp)[:-1]
fvals = np.concatenate([[0.0], np.cumsum(slope * np.diff(pts))])
f = lambda z: np.interp(z, pts, fvals)
dual = f(xs).mean() - f(ys).mean()
assert abs(dual - w1) < 1e-9, (dual, w1)
lip = np.max(np.abs(np.diff(fvals)) / np.maximum(np.diff(pts), 1e-300))
assert lip <= 1 + 1e-9, lip
for h in (lambda z: z, np.abs, np.sin, lambda z: -np.tanh(z)):    # other 1-Lipschitz functions
    assert h(xs).mean() - h(ys).mean() <= w1 + 1e-12
detail = f"400 + 400 samples: POT emd2 W1 = {w1:.6f}, witness E_p f - E_q f = {dual:.6f}"
"""

_CLIP = """
rng = np.random.default_rng(1)
c, widths = CLIP, [2, 128, 128, 1]
bound = np.prod([c * np.sqrt(m * n) for m, n in zip(widths[:-1], widths[1:])])
for _ in range(20):
    Ws = [rng.uniform(-c, c, (n, m)) for m, n in zip(widths[:-1], widths[1:])]
    assert np.prod([np.linalg.norm(W, 2) for W in Ws]) <= bound
detail = f"prod ||W||_2 <= prod c sqrt(mn) = {bound:.4g} for widths {widths}"
"""

_GP = """
import ot
rng = np.random.default_rng(2)
xs, ys = rng.normal(0.0, 1.0, 300), rng.normal(8.0, 1.0, 300)
cost = ot.dist(xs[:, None], ys[:, None], metric="euclidean")
w1 = ot.emd2(np.full(300, 1 / 300), np.full(300, 1 / 300), cost)
f = lambda z: -z                                   # unit slope everywhere
assert abs(f(xs).mean() - f(ys).mean() - w1) < 1e-9, w1
detail = f"separated samples: f(z) = -z (|f'| = 1) attains POT's W1 = {w1:.6f}"
"""

_SPECTRAL = """
rng = np.random.default_rng(3)
widths = [2, 128, 128, 1]
Ws = [rng.normal(size=(n, m)) for m, n in zip(widths[:-1], widths[1:])]
def sigma_power(W, iters=200):             # power iteration, as spectral normalisation runs it
    u = rng.normal(size=W.shape[0])
    for _ in range(iters):
        v = W.T @ u
        v /= np.linalg.norm(v)
        u = W @ v
        u /= np.linalg.norm(u)
    return u @ W @ v
normed = [W / sigma_power(W) for W in Ws]
assert all(abs(np.linalg.norm(W, 2) - 1) < 1e-6 for W in normed)
def critic(x):
    for W in normed[:-1]:
        x = np.maximum(W @ x, 0.0)
    return normed[-1] @ x
pairs = rng.normal(size=(2000, 2, 2))
ratios = [abs(critic(a) - critic(b))[0] / np.linalg.norm(a - b) for a, b in pairs]
assert max(ratios) <= 1 + 1e-9, max(ratios)
detail = f"||W / sigma(W)||_2 = 1 per layer; largest |D(a) - D(b)| / |a - b| = {max(ratios):.3f}"
"""

_HINGE = """
ds = np.linspace(-2, 2, 4001)
for xv in (-2.0, 0.0, 0.5, 3.0):
    pa, pb = p_data.pdf(xv), p_g.pdf(xv)
    vals = -pa * np.maximum(0, 1 - ds) - pb * np.maximum(0, 1 + ds)
    assert abs(vals.max() + 2 * min(pa, pb)) < 1e-12 and abs(ds[np.argmax(vals)]) <= 1, xv
pa, pb = p_data.pdf(grid), p_g.pdf(grid)
tv = 0.5 * np.trapezoid(np.abs(pa - pb), grid)
v_star = -2 * np.trapezoid(np.minimum(pa, pb), grid)
assert abs(v_star - (2 * tv - 2)) < 1e-8
detail = f"N(0,1) vs N(1,1.5^2): V(D*) = {v_star:.6f} = 2 TV - 2, TV = {tv:.6f}"
"""


def _gan(topic: Topic, form: str) -> None:
    topic.step(
        "V(D, G) = E_data log D(x) + E_z log(1 - D(G(z))) "
        "= int p(x) log D(x) + q(x) log(1 - D(x)) dx",
        r"V(D,G) = \int p(x)\log D(x) + q(x)\log(1-D(x))\,dx",
        "the declared critic loss; q is the law of G(z) (change of variables in E_z)",
        "Goodfellow et al. 2014, eq. 1",
    )
    topic.step(
        "D*(x) = p(x) / (p(x) + q(x))",
        r"D^*(x) = \frac{p(x)}{p(x)+q(x)}",
        "maximise a log y + b log(1 - y) pointwise: its derivative vanishes at a/(a+b), where "
        "the second derivative is -(a+b)^3/(ab) < 0",
        "Goodfellow et al. 2014, Prop. 1",
        ("sympy", _D_STAR),
    )
    topic.step(
        "V(D*, G) = -log 4 + 2 JS(p || q), minimised exactly when q = p",
        r"V(D^*,G) = -\log 4 + 2\,\mathrm{JS}(p\,\|\,q)",
        "substitute D*, add and subtract log 2 inside each logarithm",
        "Goodfellow et al. 2014, Thm. 1",
        ("sympy", _JS),
    )
    if form == "nonsaturating":
        topic.step(
            "the generator minimises -E log D(G(z)) instead of E log(1 - D(G(z))): with "
            "D = sigmoid(l), d/dl log(1 - D) = -D -> 0 when D -> 0, "
            "d/dl (-log D) = -(1 - D) -> -1",
            r"\partial_l\log(1-\sigma(l)) = -\sigma(l),\ \partial_l(-\log\sigma(l)) = "
            r"-(1-\sigma(l))",
            "the same fixed point, but gradients that do not vanish early in training",
            "Goodfellow et al. 2014, sec. 3",
            ("sympy", _NONSAT),
        )


def _wgan(topic: Topic, penalty: object) -> None:
    topic.step(
        "W1(p, q) = inf_(pi in Pi(p, q)) E_pi |x - y| = sup_(||f||_L <= 1) E_p f - E_q f",
        r"W_1(p,q) = \inf_{\pi}\mathbb E_\pi|x-y| = \sup_{\|f\|_L\le1}"
        r"\mathbb E_p f - \mathbb E_q f",
        "Kantorovich-Rubinstein duality; in 1-D the optimal f has f' = sign(F_q - F_p)",
        "Villani 2009, Remark 6.5; Arjovsky et al. 2017, eq. 3",
        ("numeric", _KR),
    )
    kind = penalty.name if hasattr(penalty, "name") else str(penalty)
    if kind == "clip":
        value = float(penalty.args[0]) if penalty.args else 0.01
        topic.step(
            f"clipping every weight to [-{value:g}, {value:g}] bounds the critic's Lipschitz "
            "constant by prod_l ||W_l||_2 <= prod_l c sqrt(m_l n_l) (ReLU is 1-Lipschitz), so "
            "the critic is K-Lipschitz and the objective estimates K W1",
            r"\|f\|_L \le \prod_l\|W_l\|_2 \le \prod_l c\sqrt{m_l n_l}",
            "composition of Lipschitz maps; ||W||_2 <= ||W||_F",
            "Arjovsky et al. 2017, sec. 3",
            ("numeric", _CLIP.replace("CLIP", repr(value))),
        )
    else:
        where = {
            "gradient": "on random points of the segments between real and generated samples "
            "(Gulrajani et al. 2017)",
            "dragan": "around perturbed real samples (Kodali et al. 2017)",
        }.get(kind, "")
        topic.step(
            f"the penalty {kind} pushes ||grad f|| towards 1 {where}, a soft Lipschitz "
            "constraint consistent with the KR optimum, which has unit gradient norm along the "
            "optimal coupling",
            r"\|\nabla f^*\| = 1\ \text{on the coupling's segments}",
            "a property of the KR optimum",
            "Gulrajani et al. 2017, Prop. 1; Miyato et al. 2018",
            ("numeric", _GP),
        )


def _spectral(topic: Topic) -> None:
    topic.step(
        "spectral_norm: each weight is divided by its largest singular value (power "
        "iteration), so every layer is 1-Lipschitz and so is the critic (ReLU is 1-Lipschitz)",
        r"\|D\|_L \le \prod_l \|W_l/\sigma(W_l)\|_2 = 1",
        "composition of 1-Lipschitz maps; sigma(W) = ||W||_2 is the largest singular value",
        "Miyato et al. 2018, sec. 2.1",
        ("numeric", _SPECTRAL),
    )


def adversarial_steps(model: CheckedModel) -> tuple[list[str], list[Topic]]:
    """The setup lines and topics of an adversarial model (module docstring)."""
    loss = model.loss
    if loss.name == "wasserstein":
        topic = Topic("the Kantorovich-Rubinstein dual of W1")
        _wgan(topic, option(loss, "penalty", None))
    elif loss.name == "hinge":
        topic = Topic("the optimal hinge critic and the total variation")
        topic.step(
            "V(D) = -E_p max(0, 1 - D) - E_q max(0, 1 + D) is maximised by D* = sign(p - q) "
            "(any D in [-1, 1] where p = q), and V(D*) = -2 int min(p, q) = 2 TV(p, q) - 2",
            r"D^* = \operatorname{sign}(p-q),\ V(D^*) = 2\,\mathrm{TV}(p,q) - 2",
            "pointwise: -a max(0, 1 - D) - b max(0, 1 + D) is piecewise linear in D, its "
            "maximum -2 min(a, b) at D = +-1",
            "Lim & Ye 2017; Miyato et al. 2018",
            ("numeric", _HINGE),
        )
    else:
        topic = Topic("the optimal discriminator and the Jensen-Shannon divergence")
        form = option(loss, "form", None)
        _gan(topic, opt_text(form) if form is not None else "minimax")
    critic = model.nets.get(model.critic.name) if model.critic is not None else None
    if critic is not None and critic.options.get("spectral_norm"):
        _spectral(topic)
    return [HELPERS.strip()], [topic]
