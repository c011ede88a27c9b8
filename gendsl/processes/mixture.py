"""An isotropic Gaussian mixture whose noised marginals and scores are exact: the ground truth
the samplers are tested and benchmarked against, no training needed."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from gendsl.processes.base import Process, ScoreFn, as_time

__all__ = ["GaussianMixture"]


class GaussianMixture:
    """p_0 = Σ_m w_m N(μ_m, diag σ_m²) with ``means [M, D]``, ``stds [M]`` or ``[M, D]``,
    ``weights [M]`` (normalised here).

    Under x_t = a_t x0 + s_t eps the marginal stays a mixture,
    p_t = Σ_m w_m N(a_t μ_m, diag(a_t² σ_m² + s_t²)), so its score is exact.
    """

    def __init__(self, means: Tensor, stds: Tensor | float, weights: Tensor | None = None):
        means = torch.as_tensor(means)
        if means.ndim != 2:
            raise ValueError(f"means must have shape [M, D], got {tuple(means.shape)}")
        M, D = means.shape
        stds = torch.as_tensor(stds, dtype=means.dtype, device=means.device)
        if stds.ndim == 0:
            stds = stds.expand(M, D)
        elif stds.shape == (M,):
            stds = stds[:, None].expand(M, D)
        if stds.shape != (M, D):
            raise ValueError(
                f"stds must have shape [M] or [M, D] = [{M}, {D}], got {tuple(stds.shape)}"
            )
        if not bool((stds > 0).all()):
            raise ValueError(f"stds must be > 0, got {stds.min().item()}")
        weights = torch.full((M,), 1.0 / M) if weights is None else torch.as_tensor(weights)
        weights = weights.to(means)
        if weights.shape != (M,) or not bool((weights > 0).all()):
            raise ValueError(f"weights must be {M} positive numbers, got {weights.tolist()}")
        self.means, self.stds, self.weights = means, stds, weights / weights.sum()

    @property
    def dim(self) -> int:
        """The data dimension D."""
        return self.means.shape[1]

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None):
        """A copy on another device or dtype."""
        return GaussianMixture(
            self.means.to(device, dtype),
            self.stds.to(device, dtype),
            self.weights.to(device, dtype),
        )

    def _noised(self, x: Tensor, t: Tensor | None, process: Process | None):
        """Means [B?, M, D] and variances of the components of p_t, matched to x."""
        mu, var = self.means.to(x), self.stds.to(x) ** 2
        if process is None:
            return mu[None], var[None]
        a_t, s_t = process.marginal(as_time(t, x))
        a, s = a_t[:, None, None], s_t[:, None, None]
        return a * mu[None], a**2 * var[None] + s**2

    def component_log_probs(
        self, x: Tensor, t: Tensor | None = None, process: Process | None = None
    ) -> Tensor:
        """log w_m + log N(x; a_t μ_m, diag(a_t² σ_m² + s_t²)) for each sample and component,
        shape [B, M]; without a process, the clean mixture (t = 0)."""
        mu, var = self._noised(x, t, process)
        diff = x[:, None, :] - mu
        log_n = -0.5 * (diff**2 / var + torch.log(2 * math.pi * var)).sum(-1)
        return torch.log(self.weights.to(x)) + log_n

    def log_prob(
        self, x: Tensor, t: Tensor | None = None, process: Process | None = None
    ) -> Tensor:
        """log p_t(x) per sample (log-sum-exp over components)."""
        return torch.logsumexp(self.component_log_probs(x, t, process), dim=1)

    def responsibilities(
        self, x: Tensor, t: Tensor | None = None, process: Process | None = None
    ) -> Tensor:
        """Posterior component probabilities r_m(x) ∝ w_m N_m(x), shape [B, M]."""
        return torch.softmax(self.component_log_probs(x, t, process), dim=1)

    def score(self, x: Tensor, t: Tensor | None = None, process: Process | None = None) -> Tensor:
        """∇ₓ log p_t(x) = Σ_m r_m(x) (a_t μ_m - x) / (a_t² σ_m² + s_t²), for x of shape [B, D]."""
        mu, var = self._noised(x, t, process)
        r = self.responsibilities(x, t, process)
        return (r[:, :, None] * (mu - x[:, None, :]) / var).sum(1)

    def score_fn(self, process: Process) -> ScoreFn:
        """``score_fn(x, t)`` for the noised marginals of ``process``; ``x`` may be ``[B, ...]``
        with D entries per sample."""

        def score_fn(x: Tensor, t: Tensor) -> Tensor:
            flat = x.reshape(x.shape[0], -1)
            return self.score(flat, as_time(t, flat), process).reshape_as(x)

        return score_fn

    def sample(
        self, n: int, *, generator: torch.Generator | None = None, return_labels: bool = False
    ) -> Tensor | tuple[Tensor, Tensor]:
        """n draws from p_0 (and, if asked, their component labels)."""
        labels = torch.multinomial(self.weights, n, replacement=True, generator=generator)
        z = torch.randn(
            n, self.dim, generator=generator, device=self.means.device, dtype=self.means.dtype
        )
        x = self.means[labels] + self.stds[labels] * z
        return (x, labels) if return_labels else x
