"""The checker's rules for ``loss elbo(residual = true)`` (NVAE's residual normal cells,
Vahdat & Kautz 2020, sec. 3.2; lowered by :mod:`gendsl.lower.residual`): every guide site is a
Normal relative to a Normal prior, and the prior's parents are known when the guide reaches
the site (the guide evaluates the prior with its own values)."""

from __future__ import annotations

from collections.abc import Callable

from gendsl.ir import CheckedModel
from gendsl.source import Span

__all__ = ["check_residual"]


def check_residual(model: CheckedModel, report: Callable[[str, Span], None]) -> None:
    """Report each guide site that ``residual = true`` cannot write relative to its prior."""
    loss = model.loss
    if loss.name != "elbo" or not loss.kwargs.get("residual"):
        return
    priors = {s.name: s for s in model.sites}
    known = {v.name for v in (*model.data_vars(), *model.condition_vars())}
    for q in model.guide:
        p = priors.get(q.name)
        if p is not None and (q.dist, p.dist) != ("Normal", "Normal"):
            report(
                f"residual = true writes the guide's {q.name} relative to its prior, which needs "
                f"Normal for both; here q is {q.dist} and p is {p.dist} (remove residual = true "
                "or draw both from Normal)",
                q.span,
            )
        late = [g for g in (p.given if p is not None else ()) if g not in known]
        if late:
            report(
                f"residual = true evaluates the prior p({q.name} | {', '.join(p.given)}) in the "
                f"guide, but the guide has not drawn {', '.join(late)} before {q.name}; draw "
                f"{late[0]} earlier in the guide",
                q.span,
            )
        known.add(q.name)
