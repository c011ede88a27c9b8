"""What the back ends do not support, refused by the checker, located.

Each rule here is one the compiler (``gendsl.lower``) enforces when it builds a model; checking
it on the :class:`~gendsl.ir.CheckedModel` reports it from ``gendsl check``, at the
statement to change, together with every other error of the spec:

- ``loss elbo(enumerate = [...])`` with ``free_bits`` (``lower/latent.py``): the free-bits KL
  is per guide site, enumerated sites have none;
- ``free_bits`` with ``kl = mc`` (``lower/latent.py``): free bits clamp the analytic KL;
- ``residual = true`` with a guide site that is not a Normal relative to a Normal prior whose
  parents the guide has drawn before it (``lower/residual.py``; :mod:`.residual_rules`);
- ``loss vq(prior = pixelcnn)`` with a code that is not a 2-D grid (``objectives/code_prior.py``;
  :mod:`.vq_rules`);
- a condition in a family whose plugin says it is not ``conditional``; the rules of
  conditional GANs and energies (:mod:`gendsl.analysis.conditional`);
- a packed ``Uniform(net(...))`` (not ``packable`` in :mod:`gendsl.distributions`): its two
  ends cannot be split from one output;
- a packed site in the adversarial family (``lower/adversarial.py``), which evaluates explicit
  parameters only;
- a ``reflow`` coupling in a conditional model (``lower/matching.py``): reflow pairs carry no
  conditions;
- a consistency ``teacher`` that is not a diffusion model (``lower/diffusion_consistency.py``);
- a flow-matching model whose data is not one of the path's ends ``x0``, ``x1``, whose source
  ``x0`` is not drawn from a fixed distribution, or is both data and sampled
  (``lower/matching.py``).
"""

from __future__ import annotations

from collections.abc import Callable

from gendsl.analysis.conditional import conditional_rules
from gendsl.analysis.residual_rules import check_residual
from gendsl.analysis.resolve import Scope, merged_model
from gendsl.analysis.vq_rules import check_code_priors
from gendsl.distributions import DISTRIBUTIONS
from gendsl.errors import SpecError
from gendsl.families import table as families
from gendsl.families.matching import transport_source
from gendsl.ir import CheckedModel
from gendsl.source import Span

__all__ = ["unsupported"]

Report = Callable[[str, Span], None]


def _teacher(model: CheckedModel, scope: Scope, report: Report) -> None:
    name = model.loss.kwargs.get("teacher") if model.loss.name == "consistency" else None
    teacher = scope.models.get(name) if isinstance(name, str) else None
    merged = merged_model(scope, teacher) if teacher is not None else None
    if merged is None:
        return
    keywords = (families.STATEMENTS.get(type(s)) for s in merged.body)
    family = families.recognise(k for k in keywords if k is not None)
    if family not in (None, "diffusion"):
        report(
            f"the teacher of consistency distillation must be a diffusion model; '{name}' is "
            f"a {family}-family model",
            option_span(model, "teacher"),
        )


def option_span(model: CheckedModel, name: str) -> Span:
    """Where the loss statement writes its option ``name`` (the loss itself if defaulted)."""
    option = model.loss_option
    if option is None:
        return model.loss.span or model.name_span
    kw = option.kwarg(name)
    return kw.span if kw is not None else option.span


def _loss_options(model: CheckedModel, report: Report) -> None:
    loss = model.loss
    if loss.name != "elbo" or not loss.kwargs.get("free_bits"):
        return
    if loss.kwargs.get("enumerate"):
        report(
            "loss elbo: free_bits cannot be combined with enumerate (free bits clamp the KL "
            "of each guide site; an enumerated latent has none); remove one of them",
            option_span(model, "free_bits"),
        )
    if loss.kwargs.get("kl") == "mc":
        report(
            "loss elbo: free_bits needs the analytic KL; remove kl = mc", option_span(model, "kl")
        )


def _conditions(model: CheckedModel, report: Report) -> None:
    conditions = model.condition_vars()
    if not conditions:
        return
    first = conditions[0]
    plugin = families.family(model.family)
    if not plugin.conditional:
        kind = plugin.words.split(" ", 1)[1]  # "an energy-based model" -> "energy-based model"
        report(
            f"conditional {kind}s are not supported yet; remove 'condition {first.name}'",
            first.span,
        )
    couple = model.couple
    if couple is not None and couple.coupling.name == "reflow":
        report(
            f"reflow pairs carry no conditions; remove 'condition {first.name}' or couple by "
            "another coupling",
            first.span,
        )


def _packed_sites(model: CheckedModel, report: Report) -> None:
    for site in model.sites:
        if site.packed is None:
            continue
        info = DISTRIBUTIONS[site.dist]
        if not info.packable:
            report(
                f"{info.name} cannot take its parameters from one network; "
                f"write {info.name}({', '.join(info.params)})",
                site.packed.span,
            )
        elif model.family == "adversarial":
            params = ", ".join(DISTRIBUTIONS[site.dist].params)
            report(
                f"the adversarial family takes explicit distribution parameters: write "
                f"{site.dist}({params}) instead of one network {site.packed.func}(...)",
                site.packed.span,
            )


def _path_ends(model: CheckedModel, report: Report) -> None:
    path = model.path
    if model.family != "matching" or path is None or not path.target.endswith("_t"):
        return
    base = path.target[:-2]
    source, end = base + "0", base + "1"
    for v in model.data_vars():
        if v.name not in (end, source):
            report(
                f"a flow-matching model's data must be the path's end {end}; '{v.name}' is not "
                f"(declare 'data {end} : ...' and let the path run from {source} to {end})",
                v.span,
            )
    site = next((s for s in model.sites if s.name == source), None)
    if site is not None and transport_source(model) == source:
        report(
            f"the source {source} is data (drawn from --source-data); remove '{source} ~ ...' "
            f"or declare it 'latent {source} : ...'",
            site.span,
        )
    elif site is not None and (site.given or site.packed is not None):
        report(
            f"the source {source} must be drawn from a fixed distribution, e.g. "
            f"{source} ~ Normal(0, 1)",
            site.span,
        )


def unsupported(model: CheckedModel, scope: Scope) -> list[SpecError]:
    """Every construct of ``model`` that its back end refuses (module docstring), located in
    the files of ``scope``."""
    found: list[SpecError] = []

    def report(message: str, span: Span) -> None:
        found.append(SpecError(message, span, scope.sources.get(span.file)))

    _loss_options(model, report)
    _teacher(model, scope, report)
    _conditions(model, report)
    conditional_rules(model, report)
    _packed_sites(model, report)
    _path_ends(model, report)
    check_residual(model, report)
    check_code_priors(model, option_span(model, "prior"), report)
    return found
