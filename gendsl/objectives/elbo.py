"""Variational objectives: the ELBO with analytic or Monte Carlo KL, β weighting and annealing,
free bits, and the importance-weighted bound.

The functions work on *site records*: for each named random choice, the distribution it was
drawn from and its value, one record per run of the model (replaying the guide's values) and of
the guide.  Every per-point quantity has shape ``[N]`` (``N`` data points, or ``k·N`` for ``k``
particles of each).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import Tensor

from gendsl.objectives.densities import Density

__all__ = [
    "ElboTerms",
    "SiteRecord",
    "active_units",
    "annealed_beta",
    "elbo_terms",
    "free_bits_kl",
    "iwae_bound",
    "kl_per_dim",
    "log_mean_exp",
    "log_weights",
]


class SiteRecord(NamedTuple):
    """One random choice of a run: its distribution ``fn`` (a
    :class:`~gendsl.objectives.densities.Density`), its ``value`` and whether it was observed
    (the data) or latent.  (A named tuple: one is made per site per training step.)"""

    fn: Density
    value: Tensor
    observed: bool


def _total(terms: Iterable[Tensor], like: Tensor) -> Tensor:
    """Σ terms without a leading zero (one fewer op in the graph); ``0`` when there are none."""
    total = None
    for t in terms:
        total = t if total is None else total + t
    return torch.zeros((), device=like.device, dtype=like.dtype) if total is None else total


@dataclass(frozen=True)
class ElboTerms:
    """The parts of the ELBO per data point.

    ``recon`` is E_q[log p(x | z)] (one sample), ``kl[name]`` the KL (or its one-sample estimate
    log q − log p) of each latent site, and ``kl_dims[name]`` the analytic KL per latent
    dimension ``[N, *event]`` where it exists, else ``None``.
    """

    recon: Tensor
    kl: dict[str, Tensor]
    kl_dims: dict[str, Tensor | None]

    @property
    def kl_total(self) -> Tensor:
        """Σ over latent sites of the KL, per data point."""
        return _total(self.kl.values(), self.recon) if self.kl else torch.zeros_like(self.recon)

    @property
    def elbo(self) -> Tensor:
        """recon − KL, per data point."""
        return self.recon - self.kl_total


def log_mean_exp(log_w: Tensor, dim: int = 0) -> Tensor:
    """log (1/k) Σ_i exp(log_w_i) over ``dim`` of size k, computed stably."""
    return torch.logsumexp(log_w, dim) - math.log(log_w.shape[dim])


def kl_per_dim(q: Density, p: Density) -> Tensor | None:
    """Analytic KL(q ‖ p) per event element, ``[*batch, *event]``, or ``None`` without a closed
    form for the pair (see :meth:`~gendsl.objectives.densities.Density.kl_elements`)."""
    return q.kl_elements(p)


def elbo_terms(
    model: Mapping[str, SiteRecord],
    guide: Mapping[str, SiteRecord],
    *,
    analytic: bool,
    per_dim: bool = True,
) -> ElboTerms:
    """Split the ELBO (Kingma & Welling 2014, eq. 3) into reconstruction and KL terms.

    L(x) = E_q[log p(x | z)] − Σ_sites KL(q(z_s | ·) ‖ p(z_s | ·)).  With ``analytic`` the KL
    of a site is the closed form where there is one (Pyro's ``TraceMeanField_ELBO``), else and
    always without it the one-sample estimate log q(z) − log p(z) (``Trace_ELBO``).  The KL
    per dimension is computed only with ``per_dim``.
    """
    like = next(iter(model.values())).value
    recon = _total((r.fn.log_prob(r.value) for r in model.values() if r.observed), like)
    kl: dict[str, Tensor] = {}
    kl_dims: dict[str, Tensor | None] = {}
    for name, q in guide.items():
        p = model[name]
        dims = kl_per_dim(q.fn, p.fn) if analytic or per_dim else None
        if analytic and dims is not None:
            kl[name] = q.fn.sum_event(dims)
        else:
            kl[name] = q.fn.log_prob(q.value) - p.fn.log_prob(q.value)
        kl_dims[name] = dims if per_dim else None
    return ElboTerms(recon, kl, kl_dims)


def log_weights(model: Mapping[str, SiteRecord], guide: Mapping[str, SiteRecord]) -> Tensor:
    """log w = log p(x, z) − log q(z | x) per data point, for z drawn from the guide."""
    like = next(iter(model.values())).value
    log_p = _total((r.fn.log_prob(r.value) for r in model.values()), like)
    if not guide:
        return log_p
    return log_p - _total((r.fn.log_prob(r.value) for r in guide.values()), like)


def iwae_bound(log_w: Tensor) -> Tensor:
    """The importance-weighted bound (Burda et al. 2016, eq. 8) per data point.

    L_k(x) = log (1/k) Σ_i w_i with w_i = p(x, z_i) / q(z_i | x); ``log_w`` is ``[k, N]``.
    L_1 is the ELBO and L_k increases with k towards log p(x).
    """
    return log_mean_exp(log_w, 0)


def free_bits_kl(kl_dims: Tensor, floor: float) -> Tensor:
    """Σ_j max(λ, E_batch[KL_j]): the KL with a floor λ per latent dimension ("free bits",
    Kingma et al. 2016, appendix C.8).  ``kl_dims`` is ``[N, *event]``; the result is the KL
    charged for the batch mean (a scalar).  Below the floor a dimension gets no gradient."""
    mean = kl_dims.reshape(kl_dims.shape[0], -1).mean(0)
    return torch.clamp(mean, min=floor).sum()


def annealed_beta(step: int, *, beta: float, start: float, end: float, steps: int) -> float:
    """β(step) = β · (start + (end − start) · min(1, step / steps)): a linear KL-weight warm-up
    (Bowman et al. 2016; Sønderby et al. 2016)."""
    if steps <= 0:
        raise ValueError(f"anneal steps must be > 0, got {steps}")
    return beta * (start + (end - start) * min(1.0, step / steps))


def active_units(guide_means: Tensor, *, threshold: float = 0.01) -> int:
    """The number of active latent units (Burda et al. 2016, sec. 5.2): dimensions u with
    Cov_x(E_q[z_u | x]) > ``threshold``.  ``guide_means`` is ``[N, *event]``."""
    flat = guide_means.reshape(guide_means.shape[0], -1)
    if flat.shape[0] < 2:
        return 0
    return int((flat.var(0) > threshold).sum())
