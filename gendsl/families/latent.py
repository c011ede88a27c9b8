"""The latent-variable family: VAEs, β-VAEs, IWAEs, hierarchical VAEs, VQ-VAEs, mixtures.

A model is in this family when no statement puts it in another one: its random choices
(``z ~ Normal(0, 1)``, ``x | z ~ Bernoulli(dec(z))``) and its ``guide { }`` are the whole model.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from gendsl import ir
from gendsl.families.base import Family
from gendsl.families.text import opt_text, option
from gendsl.ir.printer import format_expr

if TYPE_CHECKING:
    from gendsl.ir import CheckedModel, Opt, Site
    from gendsl.symbolic.derived import Section

__all__ = ["LATENT", "derive"]


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


def _kl_terms(model: CheckedModel, weight: str, notes: list[str]) -> tuple[list[str], list[str]]:
    """The expected log-likelihood of each observed site and the KL term of each latent one
    (a KL formula used in closed form is appended to ``notes``)."""
    loss = model.loss
    observed = {v.name for v in model.data_vars()}
    guide = {s.name: s for s in model.guide}
    enumerated = set(option(loss, "enumerate", []) or [])
    latent_names = [s.name for s in model.sites if s.name not in observed]
    q_all = (
        "q("
        + ", ".join(n for n in latent_names if n not in enumerated)
        + _cond(sorted(observed))
        + ")"
    )
    likelihood, terms = [], []
    mc = option(loss, "kl", "analytic") == "mc"
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
    return likelihood, terms


def _beta(loss: Opt) -> tuple[Any, Any]:
    """The KL weight ``beta`` of the loss and its annealing schedule (``None``: constant)."""
    anneal = option(loss, "anneal", None)
    return option(loss, "beta", 1), None if anneal in (None, "none") else anneal


def _elbo(
    loss: Opt, sec: Section, likelihood: list[str], terms: list[str], notes: list[str]
) -> None:
    beta, anneal = _beta(loss)
    sec.add("ELBO", "log p(x) >= ELBO(x) = " + " + ".join(likelihood))
    for term in terms:
        sec.add("", "  " + term)
    sec.add(
        "reference",
        "Kingma & Welling 2014; Rezende et al. 2014"
        + ("; beta: Higgins et al. 2017" if beta != 1 or anneal is not None else ""),
    )
    if anneal is not None:
        sec.add("annealing", f"beta(step) = {beta} * {opt_text(anneal)} (Bowman et al. 2016)")
    free_bits = option(loss, "free_bits", 0.0)
    if free_bits:
        sec.add(
            "free bits",
            f"each KL dimension counts max({free_bits}, KL_d) (Kingma et al. 2016)",
        )
    if option(loss, "residual", False):
        sec.add(
            "residual cells",
            "q(z_l | z_<l, x) = N(mu_p + dmu, (sigma_p dsigma)^2) relative to the prior "
            "p(z_l | z_<l) = N(mu_p, sigma_p^2): KL = 1/2 (dmu^2/sigma_p^2 + dsigma^2 - "
            "log dsigma^2 - 1) per dimension (Vahdat & Kautz 2020, eq. 2)",
            r"\mathrm{KL}=\tfrac12\Big(\frac{\Delta\mu^2}{\sigma_p^2}+\Delta\sigma^2"
            r"-\log\Delta\sigma^2-1\Big)",
        )
    for note in notes:
        sec.add("closed form", note)


def derive(model: CheckedModel, sec: Section) -> None:
    """The bound derived from the sites: one expected log-likelihood term per observed site and
    one KL term per latent site, in the expectation over its guide ancestors (Kingma & Welling
    2014; the hierarchical form of Sønderby et al. 2016 / Vahdat & Kautz 2020)."""
    for s in model.sites:
        sec.add("model", "p: " + _site_text(s))
    for s in model.guide:
        sec.add("guide", "q: " + _site_text(s))
    loss = model.loss
    if loss.name == "vq":
        sec.add(
            "loss",
            f"{opt_text(loss)}: ||x - dec(q(e))||^2 + ||sg(e) - q||^2 + "
            "commitment ||e - sg(q)||^2 (van den Oord et al. 2017)",
        )
        codes = [a.target for a in model.assigns if isinstance(a.value, ir.Quantize)]
        if len(codes) > 1:
            sec.add(
                "code levels",
                f"{', '.join(codes)}: one codebook, one codebook/commitment term and one prior "
                "each (a PixelCNN prior given the previous level's codes), the loss summed over "
                f"levels; sampling draws {' then '.join(codes)} from their priors and decodes "
                "(VQ-VAE-2, Razavi et al. 2019)",
            )
        return
    beta, anneal = _beta(loss)
    weight = "beta(step) * " if anneal is not None else ("" if beta == 1 else f"{beta} * ")
    notes: list[str] = []
    likelihood, terms = _kl_terms(model, weight, notes)
    if loss.name == "elbo":
        _elbo(loss, sec, likelihood, terms, notes)
        return
    k = option(loss, "k", 16)
    sec.add(
        "IWAE bound",
        f"log p(x) >= L_{k} = E[log 1/{k} sum_i p(x, z_i) / q(z_i | x)], z_i ~ q iid "
        f"(Burda et al. 2016); L_1 = ELBO <= L_{k} <= log p(x)",
        rf"\log p(x)\ge\mathbb E\log\frac1{{{k}}}\sum_{{i=1}}^{{{k}}}"
        rf"\frac{{p(x,z_i)}}{{q(z_i\mid x)}}",
    )


LATENT = Family(
    name="latent",
    words="a latent-variable model",
    summary="random choices over latent variables",
    recognise=MappingProxyType({}),
    derive=derive,
    lower="gendsl.lower.latent:build_latent",
    model_class="gendsl.lower.latent:LatentModel",
    samplers=("ancestral",),
    check="gendsl.analysis.family_rules:check_latent",
    one_data_variable=False,
)
