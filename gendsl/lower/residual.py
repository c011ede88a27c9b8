"""Guide sites in NVAE's residual form (``loss elbo(residual = true)``; Vahdat & Kautz 2020,
sec. 3.2): each Normal guide site's parameters are read as (Δμ, Δσ) relative to the model's
Normal prior of the same latent, evaluated in the guide's scope (the guide's values of the
prior's parents), so q(z_l | z_<l, x) = N(μ_p + Δμ, (σ_p·Δσ)²)."""

from __future__ import annotations

from collections.abc import Sequence

from gendsl.errors import UsageError
from gendsl.lower.expr import Scope
from gendsl.lower.interpret import SitePlan
from gendsl.objectives.residual import ResidualNormal

__all__ = ["ResidualPlan", "residual_guide"]


class ResidualPlan:
    """A guide site whose Normal parameters are residuals of the model site ``prior``'s."""

    def __init__(self, guide: SitePlan, prior: SitePlan):
        self.guide, self.prior, self.name = guide, prior, guide.name

    def density(self, scope: Scope, batch: tuple[int, ...]) -> ResidualNormal:
        """q = N(μ_p + Δμ, (σ_p·Δσ)²) with (μ_p, σ_p) the prior's parameters in ``scope``."""
        return ResidualNormal(
            self.prior.params(scope),
            self.guide.params(scope),
            batch=batch,
            event=self.guide.event,
            like=scope.like,
        )


def residual_guide(guide: Sequence[SitePlan], sites: Sequence[SitePlan]) -> list[ResidualPlan]:
    """Every guide site as a :class:`ResidualPlan` of its model site (both must be Normal; the
    checker reports it at the site otherwise)."""
    priors = {p.name: p for p in sites}
    plans = []
    for g in guide:
        prior = priors.get(g.name)
        if prior is None or g.site.dist != "Normal" or prior.site.dist != "Normal":
            raise UsageError(f"residual = true needs Normal prior and guide sites for {g.name}")
        plans.append(ResidualPlan(g, prior))
    return plans
