"""NVAE's residual normal cells (Vahdat & Kautz 2020, sec. 3.2): the posterior of a
hierarchical level written relative to its prior.

With the prior p(z_l | z_<l) = N(μ_p, σ_p²) and the guide's network giving (Δμ, Δσ), the
posterior is q(z_l | z_<l, x) = N(μ_p + Δμ, (σ_p·Δσ)²).  Its KL to the prior no longer depends
on μ_p (:func:`residual_normal_kl`), which NVAE reports stabilises training of deep
hierarchies.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor

from gendsl.objectives.densities import Density

__all__ = ["ResidualNormal", "residual_normal_kl", "residual_normal_params"]


def residual_normal_params(
    prior_loc: Tensor | float,
    prior_scale: Tensor | float,
    delta_loc: Tensor,
    delta_scale: Tensor,
) -> tuple[Tensor, Tensor]:
    """(μ_q, σ_q) = (μ_p + Δμ, σ_p·Δσ): the absolute parameters of NVAE's residual posterior
    (Vahdat & Kautz 2020, sec. 3.2)."""
    return prior_loc + delta_loc, prior_scale * delta_scale


def residual_normal_kl(
    delta_loc: Tensor, delta_scale: Tensor, prior_scale: Tensor | float
) -> Tensor:
    """KL(N(μ_p + Δμ, σ_p²Δσ²) ‖ N(μ_p, σ_p²)) = ½ (Δμ²/σ_p² + Δσ² − log Δσ² − 1), per
    element (Vahdat & Kautz 2020, eq. 2).

    From KL(N(μ_q, σ_q²) ‖ N(μ_p, σ_p²)) = log(σ_p/σ_q) + (σ_q² + (μ_q − μ_p)²)/(2σ_p²) − ½
    with σ_q = σ_p·Δσ and μ_q − μ_p = Δμ: log(σ_p/σ_q) = −½ log Δσ² and σ_q²/σ_p² = Δσ².
    """
    return 0.5 * (delta_loc**2 / prior_scale**2 + delta_scale**2 - torch.log(delta_scale**2) - 1)


class ResidualNormal(Density):
    """A guide site's Normal posterior in NVAE's residual form: a :class:`Density` with the
    absolute parameters (μ_p + Δμ, σ_p·Δσ), whose KL to a Normal prior is
    :func:`residual_normal_kl` of the residual parameters."""

    __slots__ = ("delta_loc", "delta_scale", "prior_scale")

    def __init__(
        self,
        prior: Mapping[str, Tensor | float],
        delta: Mapping[str, Tensor],
        *,
        batch: tuple[int, ...],
        event: tuple[int, ...],
        like: Tensor,
    ):
        loc, scale = residual_normal_params(
            prior["loc"], prior["scale"], delta["loc"], delta["scale"]
        )
        super().__init__(
            "Normal", {"loc": loc, "scale": scale}, batch=batch, event=event, like=like
        )
        self.delta_loc, self.delta_scale = delta["loc"], delta["scale"]
        self.prior_scale = prior["scale"]

    def kl_elements(self, p: Density) -> Tensor | None:
        """KL(self ‖ p) per element by :func:`residual_normal_kl` when ``p`` is the Normal prior
        the residual is relative to (same event), else :meth:`Density.kl_elements`."""
        if p.name != "Normal" or p.event != self.event:
            return super().kl_elements(p)
        return self._full(residual_normal_kl(self.delta_loc, self.delta_scale, self.prior_scale))
