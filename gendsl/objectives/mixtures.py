"""Gaussian mixtures as one site: ``x ~ GaussianMixture(weights, locs, scales)``.

p(x) = Σ_k π_k N(x; μ_k, σ_k² I),  π_k = w_k / Σ_j w_j,

built on :class:`torch.distributions.MixtureSameFamily` (through Pyro's wrapper, so a site can
be a Pyro sample site): its log-density is ``logsumexp_k(log π_k + log N(x; μ_k, σ_k² I))`` and
its draws pick a component k ~ Cat(π), then x ~ N(μ_k, σ_k² I) (Bishop 2006, §9.2).  The
mixture has no closed-form KL to or from a Gaussian, so a latent model with a mixture prior
estimates its KL by Monte Carlo.
"""

from __future__ import annotations

import pyro.distributions as pdist
import torch
from torch import Tensor

__all__ = ["GaussianMixture"]


class GaussianMixture(pdist.MixtureSameFamily):
    """Σ_k π_k N(μ_k, σ_k² I) over an event of ``event_dims`` axes.

    Every parameter ends in the component axis ``K``: ``weights`` ``[..., K]`` (positive, not
    necessarily normalised), ``locs`` and ``scales`` broadcastable to ``[..., *event, K]``.
    """

    def __init__(
        self,
        weights: Tensor,
        locs: Tensor,
        scales: Tensor,
        *,
        event_dims: int = 0,
        validate_args: bool | None = None,
    ):
        weights, locs, scales = (torch.as_tensor(t) for t in (weights, locs, scales))
        self.weights, self.locs, self.scales = weights, locs, scales  # as given
        if weights.dim() == 0:  # one component
            weights, locs, scales = weights[None], locs[..., None], scales[..., None]
        if validate_args and not bool((weights > 0).all()):
            raise ValueError(f"Expected parameter weights to be positive, found {weights}")
        self._event_dims = event_dims
        k_axis = -1 - event_dims
        loc, scale = torch.broadcast_tensors(locs, scales)
        component = pdist.Normal(
            loc.movedim(-1, k_axis), scale.movedim(-1, k_axis), validate_args=validate_args
        )
        if event_dims:
            component = component.to_event(event_dims)
        mix = pdist.Categorical(probs=weights, validate_args=validate_args)
        super().__init__(mix, component, validate_args=validate_args)

    def expand(self, batch_shape: tuple[int, ...], _instance: object = None) -> GaussianMixture:
        """The same mixture with batch shape ``batch_shape`` (Pyro's plates expand a site)."""
        shape, e = torch.Size(batch_shape), self._event_dims
        comp = self.component_distribution
        normal = comp.base_dist if e else comp
        k, event = self._num_component, tuple(self.event_shape)
        weights = self.mixture_distribution.probs.expand(*shape, k)
        locs, scales = (
            t.expand(*shape, k, *event).movedim(-1 - e, -1) for t in (normal.loc, normal.scale)
        )
        return GaussianMixture(weights, locs, scales, event_dims=e, validate_args=False)
