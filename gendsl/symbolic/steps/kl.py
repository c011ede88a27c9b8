"""The closed-form KL divergences the steps use, each derived in its check (sympy takes the
expectation of the log-ratio) and compared with a Monte Carlo estimate."""

from __future__ import annotations

__all__ = ["KL_STEPS"]

GAUSSIAN = """
y, m1, m2 = sp.symbols("y m1 m2", real=True)
s1, s2 = sp.symbols("s1 s2", positive=True)
log_ratio = sp.log(s2 / s1) - (y - m1) ** 2 / (2 * s1**2) + (y - m2) ** 2 / (2 * s2**2)
kl = sp.expand(log_ratio).subs(y**2, s1**2 + m1**2).subs(y, m1)  # E_q[y], E_q[y^2]
closed = sp.log(s2 / s1) + (s1**2 + (m1 - m2) ** 2) / (2 * s2**2) - sp.Rational(1, 2)
assert sp.simplify(kl - closed) == 0, kl
assert sp.simplify(closed.subs(s2, s1) - (m1 - m2) ** 2 / (2 * s1**2)) == 0
rng = np.random.default_rng(0)
ys = rng.normal(0.3, 0.8, 400000)
mc = np.log(1.1 / 0.8) - (ys - 0.3) ** 2 / (2 * 0.64) + (ys + 0.5) ** 2 / (2 * 1.21)
exact = float(closed.subs({m1: 0.3, s1: 0.8, m2: -0.5, s2: 1.1}))
assert abs(mc.mean() - exact) < 5 * mc.std() / np.sqrt(ys.size), (mc.mean(), exact)
detail = f"Monte Carlo {mc.mean():.5f} vs closed form {exact:.5f}, N(0.3, 0.8^2) || N(-0.5, 1.1^2)"
"""

BERNOULLI = """
y = sp.Symbol("y")
p1, p2 = sp.symbols("p1 p2", positive=True)
log_ratio = y * sp.log(p1 / p2) + (1 - y) * sp.log((1 - p1) / (1 - p2))
kl = p1 * log_ratio.subs(y, 1) + (1 - p1) * log_ratio.subs(y, 0)   # sum over y in {0, 1}
closed = p1 * sp.log(p1 / p2) + (1 - p1) * sp.log((1 - p1) / (1 - p2))
assert sp.simplify(kl - closed) == 0, kl
rng = np.random.default_rng(0)
ys = (rng.random(400000) < 0.3).astype(float)
mc = ys * np.log(0.3 / 0.6) + (1 - ys) * np.log(0.7 / 0.4)
exact = float(closed.subs({p1: 0.3, p2: 0.6}))
assert abs(mc.mean() - exact) < 5 * mc.std() / np.sqrt(ys.size), (mc.mean(), exact)
detail = f"Monte Carlo {mc.mean():.5f} vs closed form {exact:.5f} (B(0.3) || B(0.6))"
"""

CATEGORICAL = """
p = sp.symbols("p1:4", positive=True)
r = sp.symbols("r1:4", positive=True)
kl = sum(pi * (sp.log(pi) - sp.log(ri)) for pi, ri in zip(p, r))  # E_q over 3 categories
closed = sum(pi * sp.log(pi / ri) for pi, ri in zip(p, r))
assert sp.simplify(sp.expand_log(kl - closed, force=True)) == 0
rng = np.random.default_rng(0)
q, prior = np.array([0.2, 0.5, 0.3]), np.array([0.1, 0.1, 0.8])
ys = rng.choice(3, size=400000, p=q)
mc = np.log(q[ys] / prior[ys])
exact = float(np.sum(q * np.log(q / prior)))
assert abs(mc.mean() - exact) < 5 * mc.std() / np.sqrt(ys.size), (mc.mean(), exact)
detail = f"Monte Carlo {mc.mean():.5f} vs closed form {exact:.5f}"
"""

LAPLACE = """
from scipy.integrate import quad
m1, b1, m2, b2 = 0.3, 0.7, -0.4, 1.2
q = lambda y: np.exp(-abs(y - m1) / b1) / (2 * b1)
log_ratio = lambda y: np.log(b2 / b1) - abs(y - m1) / b1 + abs(y - m2) / b2
numeric = sum(quad(lambda y: q(y) * log_ratio(y), lo, hi)[0]
              for lo, hi in ((-np.inf, m2), (m2, m1), (m1, np.inf)))
closed = np.log(b2 / b1) + abs(m1 - m2) / b2 + b1 / b2 * np.exp(-abs(m1 - m2) / b1) - 1
assert abs(numeric - closed) < 1e-9, (numeric, closed)
detail = f"quadrature {numeric:.8f} = closed form {closed:.8f}"
"""

#: (q, p) -> (claim, the rule, the check's kind and source).
KL_STEPS = {
    ("Normal", "Normal"): (
        "KL(N(m1, s1^2) || N(m2, s2^2)) = log(s2/s1) + (s1^2 + (m1 - m2)^2)/(2 s2^2) - 1/2 "
        "per dimension",
        r"\mathrm{KL}(\mathcal N(m_1,s_1^2)\|\mathcal N(m_2,s_2^2)) = \log\frac{s_2}{s_1} + "
        r"\frac{s_1^2 + (m_1-m_2)^2}{2s_2^2} - \frac12",
        "E_q of the log-ratio of the two densities, with E[y] = m1, E[y^2] = s1^2 + m1^2",
        ("sympy", GAUSSIAN),
    ),
    ("Bernoulli", "Bernoulli"): (
        "KL(B(p1) || B(p2)) = p1 log(p1/p2) + (1 - p1) log((1 - p1)/(1 - p2))",
        r"\mathrm{KL}(B(p_1)\|B(p_2)) = p_1\log\frac{p_1}{p_2} + (1-p_1)\log\frac{1-p_1}{1-p_2}",
        "E_q of the log-ratio: a sum over y in {0, 1}",
        ("sympy", BERNOULLI),
    ),
    ("Categorical", "Categorical"): (
        "KL(Cat(p) || Cat(r)) = sum_k p_k log(p_k / r_k)",
        r"\mathrm{KL}(\mathrm{Cat}(p)\|\mathrm{Cat}(r)) = \sum_k p_k\log\frac{p_k}{r_k}",
        "E_q of the log-ratio: a sum over the categories",
        ("sympy", CATEGORICAL),
    ),
    ("Laplace", "Laplace"): (
        "KL(L(m1, b1) || L(m2, b2)) = log(b2/b1) + |m1 - m2|/b2 + b1/b2 exp(-|m1 - m2|/b1) - 1",
        r"\mathrm{KL} = \log\frac{b_2}{b_1} + \frac{|m_1-m_2|}{b_2} + "
        r"\frac{b_1}{b_2}e^{-|m_1-m_2|/b_1} - 1",
        "E_q of the log-ratio, integrated piecewise between the two locations",
        ("numeric", LAPLACE),
    ),
}
