"""``gendsl derive``: the mathematics a spec implies, written out for that spec.

Each family gets the equations of the papers it follows, with the spec's own names and, where
the spec fixes them, closed forms derived by sympy (SDE kernels, chain products, path
velocities).  The text types, :func:`~gendsl.symbolic.derived.render` and the cache of
finished derivations live in :mod:`gendsl.symbolic.derived`, which imports no sympy.
"""

from __future__ import annotations

from typing import Any

import sympy as sp

from gendsl import ir
from gendsl.ir import CheckedModel, Opt, Site
from gendsl.ir.printer import format_expr
from gendsl.symbolic.chain import ChainKernel, chain_kernel
from gendsl.symbolic.derived import Derivation, Section
from gendsl.symbolic.expr import to_text
from gendsl.symbolic.kernel import Kernel, sde_kernel
from gendsl.symbolic.path import PathKernel, path_velocity

__all__ = ["derive_fresh"]


def _opt_text(o: Any) -> str:
    """An option value as the spec would write it: ``ema(decay = 0.99)``, ``[c]``, ``0.5``."""
    if o is None:
        return "default"
    if isinstance(o, list):
        return "[" + ", ".join(_opt_text(v) for v in o) + "]"
    if not isinstance(o, Opt):
        return str(o)
    parts = [_opt_text(a) for a in o.args] + [f"{k} = {_opt_text(v)}" for k, v in o.kwargs.items()]
    return f"{o.name}({', '.join(parts)})" if parts else o.name


def _kw(o: Opt | None, name: str, default: Any) -> Any:
    return o.kwargs.get(name, default) if o is not None else default


# ------------------------------------------------------------------------------ diffusion


_TARGETS = {
    "eps": ("eps", r"\epsilon", "eps_hat(x_t, t)", r"\hat\epsilon_\theta(x_t, t)"),
    "x0": ("x0", "x_0", "x0_hat(x_t, t)", r"\hat x_{0,\theta}(x_t, t)"),
    "v": (
        "a(t) eps - s(t) x0",
        r"a(t)\epsilon - s(t)x_0",
        "v_hat(x_t, t)",
        r"\hat v_\theta(x_t, t)",
    ),
    "score": ("-eps / s(t)", r"-\epsilon / s(t)", "score_hat(x_t, t)", r"\hat s_\theta(x_t, t)"),
}

_WEIGHTS = {
    "none": ("lambda(t) = 1", r"\lambda(t) = 1"),
    "likelihood": (
        "lambda(t) = g(t)^2 (on the score form; Song et al. 2021b, likelihood weighting)",
        r"\lambda(t) = g(t)^2",
    ),
    "sigma2": ("lambda(t) = s(t)^2 (on the score form; Song et al. 2021)", r"\lambda(t) = s(t)^2"),
    "min_snr": (
        "lambda(t) = min(SNR(t), gamma) on the x0 form (Hang et al. 2023)",
        r"\lambda(t) = \min(\mathrm{SNR}(t), \gamma)",
    ),
}


def _diffusion_sde(model: CheckedModel, sec: Section) -> Kernel:
    k = sde_kernel(model.process, model.lets)
    x = k.var
    sec.add(
        "forward SDE",
        f"d{x} = f(t) {x} dt + g(t) dw,  t in [0, {k.T:g}]",
        rf"d{x} = f(t)\,{x}\,dt + g(t)\,dw",
    )
    sec.expr("drift", "f(t)", k.f)
    sec.expr("diffusion", "g(t)", k.g)
    sec.add(
        "kernel",
        f"{x}_t | {x}_0 ~ N(a(t) {x}_0, s(t)^2 I)  (Sarkka & Solin 2019, ch. 6)",
        rf"{x}_t \mid {x}_0 \sim \mathcal N(a(t)\,{x}_0,\; s(t)^2 I)",
    )
    if k.a is not None:
        sec.expr("mean scale", "a(t) = exp(int_0^t f)", k.a, r"a(t) = e^{\int_0^t f}")
    else:
        sec.add("mean scale", "a(t) = exp(int_0^t f(u) du)  (no closed form: quadrature)")
    if k.s2 is not None:
        sec.expr("variance", "s(t)^2", k.s2)
        sec.expr(
            "log-SNR",
            "lambda(t) = log(a^2/s^2)",
            k.log_snr,
            r"\lambda(t) = \log\frac{a(t)^2}{s(t)^2}",
        )
    else:
        sec.add("variance", "s(t)^2 = a(t)^2 int_0^t g(u)^2 / a(u)^2 du  (quadrature)")
    names = {"vp": "VP SDE", "subvp": "sub-VP SDE", "ve": "VE SDE"}
    if k.kind in names:
        params = ", ".join(f"{n} = {v:.6g}" for n, v in k.params.items())
        sec.add("recognised", f"{names[k.kind]} of Song et al. 2021 ({params})")
    return k


def _diffusion(model: CheckedModel, sec: Section) -> Kernel | ChainKernel:
    kernel: Kernel | ChainKernel
    if isinstance(model.process, ir.SDE):
        kernel = _diffusion_sde(model, sec)
        sec.add(
            "reverse SDE",
            "dx = [f(t) x - g(t)^2 grad_x log p_t(x)] dt + g(t) dw_bar "
            "(Anderson 1982; Song et al. 2021, eq. 6)",
            r"dx = [f(t)x - g(t)^2\nabla_x\log p_t(x)]\,dt + g(t)\,d\bar w",
        )
        sec.add(
            "probability-flow ODE",
            "dx/dt = f(t) x - 1/2 g(t)^2 grad_x log p_t(x) (Song et al. 2021, eq. 13)",
            r"\frac{dx}{dt} = f(t)x - \tfrac12 g(t)^2\nabla_x\log p_t(x)",
        )
    else:
        kernel = chain_kernel(model.process, model.lets)
        sec.expr("schedule", "beta_k", kernel.beta, r"\beta_k")
        sec.add(
            "marginal",
            kernel.marginal_text + "  (Ho et al. 2020, eq. 4)",
            r"q(x_k\mid x_0) = \mathcal N(\sqrt{\bar\alpha_k}x_0, (1-\bar\alpha_k)I),\ "
            r"\bar\alpha_k = \prod_{i\le k}(1-\beta_i)",
        )
        sec.add(
            "values",
            f"K = {kernel.K}, abar_1 = {kernel.alpha_bar[0]:.6g}, "
            f"abar_K = {kernel.alpha_bar[-1]:.6g}",
        )
    kind = model.predict.kind if model.predict is not None else "eps"
    target, target_tex, net, net_tex = _TARGETS.get(kind, _TARGETS["eps"])
    loss = model.loss
    if loss.name == "ddpm":
        sec.add(
            "loss L_simple",
            f"E_(k, x0, eps) || {net} - eps ||^2, x_k = sqrt(abar_k) x0 "
            "+ sqrt(1 - abar_k) eps  (Ho et al. 2020, eq. 14)",
            rf"\mathbb E\,\|{net_tex} - \epsilon\|^2",
        )
    elif loss.name == "dsm":
        sec.add(
            "loss (DSM)",
            f"E_(t, x0, eps) lambda(t) || {net} - {target} ||^2 with x_t = "
            "a(t) x0 + s(t) eps, eps ~ N(0, I)  (Vincent 2011; Song et al. 2021, eq. 7)",
            rf"\mathbb E\,\lambda(t)\,\|{net_tex} - {target_tex}\|^2,\ "
            r"x_t = a(t)x_0 + s(t)\epsilon",
        )
        weight = _kw(loss, "weight", "none")
        weight = weight.name if isinstance(weight, Opt) else str(weight)
        text, tex = _WEIGHTS.get(weight, _WEIGHTS["none"])
        sec.add("weighting", text, tex)
    else:
        sec.add("loss", f"{_opt_text(loss)} on the {kind}-parameterised network")
    return kernel


# ------------------------------------------------------------------------------ other families


def _matching(model: CheckedModel, sec: Section) -> PathKernel:
    pk = path_velocity(model.path, model.lets)
    sec.add("path", f"x_t = {to_text(pk.x_t)}", rf"x_t = {sp.latex(pk.x_t)}")
    sec.add(
        "target velocity",
        f"u_t = d x_t / dt = {to_text(pk.u_t)}  (Lipman et al. 2023; Tong et al. 2024)",
        rf"u_t = {sp.latex(pk.u_t)}",
    )
    sec.add(
        "loss",
        "E_(t, (x0, x1), w) || v_theta(x_t, t) - u_t ||^2  (conditional flow matching)",
        r"\mathbb E\,\|v_\theta(x_t,t) - u_t\|^2",
    )
    coupling = model.couple.coupling.name if model.couple is not None else "independent"
    sec.add("coupling", f"(x0, x1) ~ {coupling}")
    sec.add("sampling", "dx/dt = v_theta(x, t), integrated from t = 0 to 1")
    return pk


def _site_text(s: Site) -> str:
    given = f" | {', '.join(s.given)}" if s.given else ""
    if s.packed is not None:
        return f"{s.name}{given} ~ {s.dist}({format_expr(s.packed)})"
    args = ", ".join(f"{k} = {format_expr(v)}" for k, v in s.params.items())
    return f"{s.name}{given} ~ {s.dist}({args})"


#: Pairs of (q, p) distribution families whose KL divergence has a closed form here.
_ANALYTIC_KL = {
    ("Normal", "Normal"),
    ("Bernoulli", "Bernoulli"),
    ("Categorical", "Categorical"),
    ("Laplace", "Laplace"),
}

_KL_FORMULAS = {
    "Normal": "KL(N(m1, s1^2) || N(m2, s2^2)) = log(s2/s1) + (s1^2 + (m1 - m2)^2)/(2 s2^2) - 1/2 "
    "per dimension",
    "Bernoulli": "KL(B(p1) || B(p2)) = p1 log(p1/p2) + (1 - p1) log((1 - p1)/(1 - p2))",
    "Categorical": "KL(Cat(p1) || Cat(p2)) = sum_k p1_k log(p1_k/p2_k)",
    "Laplace": "KL(L(m1, b1) || L(m2, b2)) = log(b2/b1) + |m1 - m2|/b2 + b1/b2 exp(-|m1 - m2|/b1)"
    " - 1",
}


def _cond(names: tuple[str, ...] | list[str]) -> str:
    return f" | {', '.join(names)}" if names else ""


def _latent(model: CheckedModel, sec: Section) -> None:
    """The bound derived from the sites: one expected log-likelihood term per observed site and
    one KL term per latent site, in the expectation over its guide ancestors (Kingma & Welling
    2014; the hierarchical form of Sønderby et al. 2016 / Vahdat & Kautz 2020)."""
    observed = {v.name for v in model.data_vars()}
    for s in model.sites:
        sec.add("model", "p: " + _site_text(s))
    for s in model.guide:
        sec.add("guide", "q: " + _site_text(s))
    loss = model.loss
    guide = {s.name: s for s in model.guide}
    enumerated = set(_kw(loss, "enumerate", []) or [])
    latent_names = [s.name for s in model.sites if s.name not in observed]
    q_all = (
        "q("
        + ", ".join(n for n in latent_names if n not in enumerated)
        + _cond(sorted(observed))
        + ")"
    )
    if loss.name == "vq":
        sec.add(
            "loss",
            f"{_opt_text(loss)}: ||x - dec(q(e))||^2 + ||sg(e) - q||^2 + "
            "commitment ||e - sg(q)||^2 (van den Oord et al. 2017)",
        )
        return
    likelihood, terms, notes = [], [], []
    beta = _kw(loss, "beta", 1)
    anneal = _kw(loss, "anneal", None)
    anneal = None if anneal in (None, "none") else anneal
    weight = "beta(step) * " if anneal is not None else ("" if beta == 1 else f"{beta} * ")
    mc = _kw(loss, "kl", "analytic") == "mc"
    for s in model.sites:
        if s.name in observed:
            likelihood.append(f"E_{q_all}[log p({s.name}{_cond(s.given)})]")
        elif s.name in enumerated:
            continue  # summed inside the term of the site that depends on it
        elif s.name in guide:
            q = guide[s.name]
            ancestors = [g for g in q.given if g not in observed]
            outer = f"E_q({', '.join(ancestors)}{_cond(sorted(observed))})" if ancestors else ""
            summed = [g for g in s.given if g in enumerated]
            if summed:  # a mixture prior: no closed-form KL, the sum over c is exact
                c = ", ".join(summed)
                prior = " ".join(f"p({g})" for g in summed)
                terms.append(
                    f"- {weight}E_q({s.name}{_cond(q.given)})[log q({s.name}{_cond(q.given)}) - "
                    f"log sum_{c} {prior} p({s.name}{_cond(list(s.given))})]  "
                    f"[{c} enumerated exactly; Monte Carlo in {s.name}]"
                )
                continue
            kl = f"KL(q({s.name}{_cond(q.given)}) || p({s.name}{_cond(s.given)}))"
            closed = (q.dist, s.dist) in _ANALYTIC_KL and not mc
            how = f"{q.dist} || {s.dist}: " + ("closed form" if closed else "Monte Carlo")
            terms.append(
                f"- {weight}{outer}[{kl}]  [{how}]" if outer else f"- {weight}{kl}  [{how}]"
            )
            if closed and q.dist in _KL_FORMULAS and _KL_FORMULAS[q.dist] not in notes:
                notes.append(_KL_FORMULAS[q.dist])
    if loss.name == "elbo":
        sec.add("ELBO", "log p(x) >= ELBO(x) = " + " + ".join(likelihood))
        for term in terms:
            sec.add("", "  " + term)
        sec.add(
            "reference",
            "Kingma & Welling 2014; Rezende et al. 2014"
            + ("; beta: Higgins et al. 2017" if beta != 1 or anneal is not None else ""),
        )
        if anneal is not None:
            sec.add("annealing", f"beta(step) = {beta} * {_opt_text(anneal)} (Bowman et al. 2016)")
        free_bits = _kw(loss, "free_bits", 0.0)
        if free_bits:
            sec.add(
                "free bits",
                f"each KL dimension counts max({free_bits}, KL_d) (Kingma et al. 2016)",
            )
        for note in notes:
            sec.add("closed form", note)
    else:
        k = _kw(loss, "k", 16)
        sec.add(
            "IWAE bound",
            f"log p(x) >= L_{k} = E[log 1/{k} sum_i p(x, z_i) / q(z_i | x)], z_i ~ q iid "
            f"(Burda et al. 2016); L_1 = ELBO <= L_{k} <= log p(x)",
            rf"\log p(x)\ge\mathbb E\log\frac1{{{k}}}\sum_{{i=1}}^{{{k}}}"
            rf"\frac{{p(x,z_i)}}{{q(z_i\mid x)}}",
        )


def _flow(model: CheckedModel, sec: Section) -> None:
    sec.add(
        "change of variables",
        "log p(x) = log p_Z(f^-1(x)) + sum_layers log|det J_l|  (Dinh et al. 2017)",
        r"\log p(x) = \log p_Z(f^{-1}(x)) + \sum_l \log|\det J_l|",
    )
    for name, flow in model.flows.items():
        sec.add("layers", f"{name}: {len(flow.body)} top-level layer(s)")
    sec.add("loss", "nll = -E_data log p(x)")


def _adversarial(model: CheckedModel, sec: Section) -> None:
    loss = model.loss
    if loss.name == "wasserstein":
        sec.add(
            "objective",
            "min_G max_{||D||_L <= 1} E_data D(x) - E_z D(G(z))  (Kantorovich "
            "dual; Arjovsky et al. 2017)",
            r"\min_G\max_{\|D\|_L\le1}\mathbb E D(x) - \mathbb E D(G(z))",
        )
        sec.add("critic", f"1-Lipschitz via {_opt_text(_kw(loss, 'penalty', None))}")
    else:
        sec.add(
            "objective",
            "min_G max_D E_data log D(x) + E_z log(1 - D(G(z)))  (Goodfellow et al. 2014)",
            r"\min_G\max_D\mathbb E\log D(x) + \mathbb E\log(1-D(G(z)))",
        )
        sec.add(
            "optimal critic",
            "D*(x) = p_data(x) / (p_data(x) + p_g(x))",
            r"D^*(x) = \frac{p_{data}(x)}{p_{data}(x)+p_g(x)}",
        )
        sec.add("loss", _opt_text(loss))


def _energy(model: CheckedModel, sec: Section) -> None:
    sec.add("density", "p(x) = exp(-E(x)) / Z", r"p(x) = e^{-E(x)}/Z")
    sec.add("score", "grad_x log p(x) = -grad_x E(x)", r"\nabla_x\log p = -\nabla_x E")
    if model.loss.name == "contrastive_divergence":
        sec.add(
            "CD gradient",
            "grad_theta NLL = E_data grad E(x) - E_model grad E(x)  (Hinton 2002)",
            r"\nabla_\theta\mathcal L = \mathbb E_{data}\nabla E - \mathbb E_{p}\nabla E",
        )
    else:
        sec.add("loss", _opt_text(model.loss))


def derive_fresh(model: CheckedModel) -> Derivation:
    """The derivation of ``model`` (see the module docstring), computed: what
    :func:`gendsl.symbolic.derived.derive` returns when its cache has no entry."""
    sec = Section(f"{model.name}: {model.family} model")
    kernel: Kernel | ChainKernel | PathKernel | None = None
    if model.family == "diffusion":
        kernel = _diffusion(model, sec)
    elif model.family == "matching":
        kernel = _matching(model, sec)
    elif model.family == "latent":
        _latent(model, sec)
    elif model.family == "flow":
        _flow(model, sec)
    elif model.family == "adversarial":
        _adversarial(model, sec)
    else:
        _energy(model, sec)
    if model.sampler is not None:
        sec.add("sampler", _opt_text(model.sampler))
    return Derivation(model.name, model.family, [sec], kernel)
