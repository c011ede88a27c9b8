"""The flow family's sampler: one pass of the inverse flow from a draw of the base, at a
temperature.

Kingma & Dhariwal (2018, "Glow", Sec. 5 and Fig. 8) sample "from a reduced-temperature model":
the base N(0, 1) becomes N(0, T²), and samples look best near T = 0.7.  For a location-scale base
(location μ, scale σ) a draw z becomes

z_T = μ + T (z - μ),

a draw of the same family with scale T σ, so its standard deviation is T times the base's.  A
Gaussian-mixture base Σ_k π_k N(μ_k, σ_k²) is tempered component by component: k ~ Cat(π), then
z_T = μ_k + T σ_k ε, ε ~ N(0, 1) (the weights and means stay, each component's standard
deviation is T times its own).  The learned priors of a multi-scale flow
(``split(prior = learned)``, ``learntop``; :mod:`gendsl.lower.flow_priors`) are bijections onto
the base, z₂ = μ(z₁) + σ(z₁) ⊙ ε, so a tempered ε tempers every one of them, the factored-out
halves included: σ(z₁) becomes T σ(z₁), as in Glow's code (``split2d_reverse`` draws
``pz.eps * eps_std``).  T = 1 is the model itself, bit for bit.
"""

from __future__ import annotations

from collections.abc import Callable

import pyro.distributions as pdist
import torch
from torch import Tensor
from torch.distributions import Distribution

from gendsl.errors import UsageError
from gendsl.objectives import draws
from gendsl.objectives.densities import base_of, draw
from gendsl.objectives.mixtures import GaussianMixture

__all__ = ["LOCATION_SCALE", "flow_ancestral", "temper", "tempered_mixture_draw"]

#: The base distributions with a location and a scale, which a temperature rescales.
LOCATION_SCALE = (pdist.Normal, pdist.Laplace, pdist.StudentT)


def temper(z: Tensor, loc: Tensor, temperature: float) -> Tensor:
    """z_T = μ + T (z - μ): a draw ``z`` of a location-scale distribution with location ``loc``
    made a draw of the same family with its scale times T (Kingma & Dhariwal 2018, Sec. 5)."""
    return loc + temperature * (z - loc)


def tempered_mixture_draw(
    mixture: GaussianMixture, temperature: float, *, generator: torch.Generator | None = None
) -> Tensor:
    """One draw of Σ_k π_k N(μ_k, (T σ_k)²): k ~ Cat(π) per position, then μ_k + T σ_k ε."""
    normal, _ = base_of(mixture.component_distribution)
    probs = mixture.mixture_distribution.probs
    batch, event = mixture.batch_shape, mixture.event_shape
    count = probs.shape[-1]
    k = torch.multinomial(probs.reshape(-1, count), 1, generator=generator).reshape(batch)
    axis = len(batch)  # the component axis of loc and scale [*batch, K, *event]
    index = k.reshape(*batch, 1, *(1,) * len(event)).expand(*batch, 1, *event)
    loc, scale = (
        t.expand(*batch, count, *event).gather(axis, index).squeeze(axis)
        for t in (normal.loc, normal.scale)
    )
    eps = draws.randn(loc.shape, generator=generator, device=loc.device, dtype=loc.dtype)
    return loc + temperature * scale * eps


def _tempered_draw(
    base: Distribution, temperature: float, generator: torch.Generator | None
) -> Tensor:
    """A draw of ``base`` at ``temperature`` (:func:`temper`, or
    :func:`tempered_mixture_draw`); a usage error for a base without a location and scale."""
    inner, _ = base_of(base)
    if isinstance(inner, GaussianMixture):
        return tempered_mixture_draw(inner, temperature, generator=generator)
    if not isinstance(inner, LOCATION_SCALE):
        names = ", ".join(c.__name__ for c in (*LOCATION_SCALE, GaussianMixture))
        raise UsageError(
            f"temperature rescales a location-scale base ({names}); this flow's base is "
            f"{type(inner).__name__}: sample at temperature 1"
        )
    return temper(draw(base, generator=generator), inner.loc, temperature)


def flow_ancestral(
    inverse: Callable[[Tensor], Tensor],
    base: Distribution,
    *,
    temperature: float = 1.0,
    generator: torch.Generator | None = None,
) -> Tensor:
    """x = T⁻¹(z_T): one draw z of ``base`` (one row per sample), tempered unless
    ``temperature`` is 1 (then exactly the base's draw), through ``inverse``."""
    if not temperature > 0:
        raise UsageError(f"temperature must be > 0; got {temperature}")
    if temperature == 1:
        return inverse(draw(base, generator=generator))
    return inverse(_tempered_draw(base, temperature, generator))
