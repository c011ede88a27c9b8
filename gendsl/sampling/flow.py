"""The flow family's sampler: one pass of the inverse flow from a draw of the base, at a
temperature.

Kingma & Dhariwal (2018, "Glow", Sec. 5 and Fig. 8) sample "from a reduced-temperature model":
the base N(0, 1) becomes N(0, T²), and samples look best near T = 0.7.  For a location-scale base
(location μ, scale σ) a draw z becomes

z_T = μ + T (z - μ),

a draw of the same family with scale T σ, so its standard deviation is T times the base's.  The
learned priors of a multi-scale flow (``split(prior = learned)``, ``learntop``;
:mod:`gendsl.lower.flow_priors`) are bijections onto the base, z₂ = μ(z₁) + σ(z₁) ⊙ ε, so a
tempered ε tempers every one of them, the factored-out halves included: σ(z₁) becomes T σ(z₁),
as in Glow's code (``split2d_reverse`` draws ``pz.eps * eps_std``).  T = 1 is the model itself,
bit for bit.
"""

from __future__ import annotations

from collections.abc import Callable

import pyro.distributions as pdist
import torch
from torch import Tensor
from torch.distributions import Distribution

from gendsl.errors import UsageError
from gendsl.objectives.densities import base_of, draw

__all__ = ["LOCATION_SCALE", "flow_ancestral", "temper"]

#: The base distributions with a location and a scale, which a temperature rescales.
LOCATION_SCALE = (pdist.Normal, pdist.Laplace, pdist.StudentT)


def temper(z: Tensor, loc: Tensor, temperature: float) -> Tensor:
    """z_T = μ + T (z - μ): a draw ``z`` of a location-scale distribution with location ``loc``
    made a draw of the same family with its scale times T (Kingma & Dhariwal 2018, Sec. 5)."""
    return loc + temperature * (z - loc)


def _location(base: Distribution) -> Tensor:
    """The location μ of a location-scale base; a usage error for any other base."""
    inner, _ = base_of(base)
    if not isinstance(inner, LOCATION_SCALE):
        names = ", ".join(c.__name__ for c in LOCATION_SCALE)
        raise UsageError(
            f"temperature rescales a location-scale base ({names}); this flow's base is "
            f"{type(inner).__name__}: sample at temperature 1"
        )
    return inner.loc


def flow_ancestral(
    inverse: Callable[[Tensor], Tensor],
    base: Distribution,
    *,
    temperature: float = 1.0,
    generator: torch.Generator | None = None,
) -> Tensor:
    """x = T⁻¹(z_T): one draw z of ``base`` (one row per sample), tempered by :func:`temper`
    unless ``temperature`` is 1, through ``inverse``."""
    if not temperature > 0:
        raise UsageError(f"temperature must be > 0; got {temperature}")
    z = draw(base, generator=generator)
    if temperature != 1:
        z = temper(z, _location(base), temperature)
    return inverse(z)
