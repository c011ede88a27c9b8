"""Energy-based models p(x) ∝ exp(-E(x)): the score, Langevin sampling, contrastive divergence.

The score of an energy model is s(x) = ∇ log p(x) = -∇E(x); it needs no normaliser, so
score-matching losses (:func:`gendsl.objectives.dsm.dsm_fixed_sigma`,
:func:`gendsl.objectives.dsm.sliced_score_matching`) apply to :func:`energy_score` directly.
Maximum likelihood needs samples of the model: :func:`langevin` draws them by (optionally
Metropolis-adjusted) Langevin dynamics, and :func:`contrastive_divergence_loss` is the surrogate
whose gradient is the likelihood gradient estimated with them.  :func:`replay_starts` picks the
chains' starting points from a persistent replay buffer (Du & Mordatch 2019).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from gendsl.errors import UsageError
from gendsl.objectives import draws
from gendsl.objectives.eager import eager

__all__ = [
    "EnergyFn",
    "contrastive_divergence_loss",
    "energy_score",
    "jem_class_energy",
    "jem_class_log_probs",
    "jem_marginal_energy",
    "langevin",
    "langevin_temperature",
    "replay_starts",
]

#: An energy: a batch [B, ...] to energies [B].
EnergyFn = Callable[[Tensor], Tensor]


@eager  # differentiated twice: eager under torch.compile
def energy_score(energy_fn: EnergyFn, x: Tensor, *, create_graph: bool = True) -> Tensor:
    """s(x) = -∇ₓE(x), the score of p ∝ exp(-E) (Hyvärinen 2005, Sec. 2).

    When ``x`` already requires grad (as inside sliced score matching) the gradient is taken with
    respect to it as it is, so higher derivatives in ``x`` flow; otherwise a detached copy is
    used.  With ``create_graph`` the result is differentiable in the energy's parameters.
    """
    with torch.enable_grad():
        if not x.requires_grad:
            x = x.detach().requires_grad_(True)
        (grad,) = torch.autograd.grad(energy_fn(x).sum(), x, create_graph=create_graph)
    return -grad


def langevin_temperature(step: float, noise: float) -> float:
    """T = noise² / (2 step): the update x' = x - step ∇E + noise ξ is unadjusted Langevin
    dynamics with step noise²/2 on the tempered energy E/T, so it targets exp(-E/T) as the
    step goes to zero (Welling & Teh 2011; T = 1 for the textbook noise √(2 step))."""
    return noise**2 / (2 * step)


def _proposal_log_density(x_to: Tensor, x_from: Tensor, grad_from: Tensor, step, noise) -> Tensor:
    """log q(x_to | x_from) up to a constant, q = N(x_from - step ∇E(x_from), noise² I)."""
    diff = x_to - x_from + step * grad_from
    return -diff.reshape(diff.shape[0], -1).pow(2).sum(1) / (2 * noise**2)


def _energy_and_grad(energy_fn: EnergyFn, x: Tensor) -> tuple[Tensor, Tensor]:
    """(E(x), ∇E(x)) of a state ``x`` that does not require grad, in grad mode."""
    x = x.detach().requires_grad_(True)
    e = energy_fn(x)
    (grad,) = torch.autograd.grad(e.sum(), x)
    return e.detach(), grad


def _grad(energy_fn: EnergyFn, x: Tensor) -> Tensor:
    """∇E(x) alone (:func:`_energy_and_grad` without detaching the energy)."""
    x = x.detach().requires_grad_(True)
    return torch.autograd.grad(energy_fn(x).sum(), x)[0]


def langevin(
    energy_fn: EnergyFn,
    x: Tensor,
    *,
    steps: int,
    step: float,
    noise: float | None = None,
    metropolis: bool = False,
    generator: torch.Generator | None = None,
    callback: Callable[[int, Tensor], None] | None = None,
) -> Tensor:
    """``steps`` Langevin updates x ← x - step ∇E(x) + noise ξ, ξ ~ N(0, I), from ``x``.

    ``noise = None`` means √(2 step): unadjusted Langevin dynamics for exp(-E) (Roberts &
    Tweedie 1996; Welling & Teh 2011).  A smaller ``noise`` is the short-run sampler of
    Du & Mordatch 2019 ("Implicit Generation and Modeling with Energy-Based Models", eq. 3 with
    separate step and noise scales), which targets exp(-E/T), T = :func:`langevin_temperature`.
    With ``metropolis`` each proposal is accepted with probability
    min(1, exp(-(E(x') - E(x))/T) q(x | x') / q(x' | x)) per chain (MALA; Roberts & Tweedie
    1996), which makes exp(-E/T) exactly invariant.  ``callback(k, x)`` sees every iterate.
    The chain runs in grad mode (for ∇E) on states that never require grad: nothing of it
    enters a graph, and the result is a plain tensor.
    """
    if not (isinstance(steps, int) and steps >= 0):
        raise UsageError(f"langevin steps must be a non-negative integer, got {steps!r}")
    if not step > 0:
        raise UsageError(f"langevin step must be > 0, got {step}")
    noise = math.sqrt(2 * step) if noise is None else noise
    if not noise > 0 and metropolis:
        raise UsageError(f"Metropolis-adjusted Langevin needs noise > 0, got {noise}")
    if noise < 0:
        raise UsageError(f"langevin noise must be >= 0, got {noise}")
    with torch.enable_grad():
        return _chain(energy_fn, x.detach().clone(), steps, step, noise, metropolis, generator,
                      callback)  # fmt: skip


def _chain(
    energy_fn: EnergyFn,
    x: Tensor,
    steps: int,
    step: float,
    noise: float,
    metropolis: bool,
    generator: torch.Generator | None,
    callback: Callable[[int, Tensor], None] | None,
) -> Tensor:
    """The iterations of :func:`langevin` from the state ``x`` (its own copy)."""
    if metropolis:
        e, grad = _energy_and_grad(energy_fn, x)
    else:
        grad = _grad(energy_fn, x)
    for k in range(steps):
        xi = draws.randn_like(x, generator=generator)
        proposal = x - step * grad + noise * xi
        if metropolis:
            e_new, grad_new = _energy_and_grad(energy_fn, proposal)
            log_ratio = (e - e_new) / langevin_temperature(step, noise)
            log_ratio = log_ratio + _proposal_log_density(x, proposal, grad_new, step, noise)
            log_ratio = log_ratio - _proposal_log_density(proposal, x, grad, step, noise)
            u = draws.rand(x.shape[0], generator=generator, device=x.device, dtype=x.dtype)
            accept = torch.log(u) < log_ratio
            shape = (-1,) + (1,) * (x.dim() - 1)
            x = torch.where(accept.reshape(shape), proposal, x)
            e = torch.where(accept, e_new, e)
            grad = torch.where(accept.reshape(shape), grad_new, grad)
        else:
            x = proposal
            if k + 1 < steps:
                grad = _grad(energy_fn, x)
        if callback is not None:
            callback(k, x)
    return x


def contrastive_divergence_loss(e_pos: Tensor, e_neg: Tensor, *, alpha: float = 0.0) -> Tensor:
    """mean E(x⁺) - mean E(x⁻) + α (mean E(x⁺)² + mean E(x⁻)²) over data x⁺ and model samples
    x⁻ (treated as constants; the two sets may differ in size).

    Its parameter gradient E_data ∇θE - E_model ∇θE is the gradient of the negative
    log-likelihood of p ∝ exp(-E) (Hinton 2002, "Training Products of Experts by Minimizing
    Contrastive Divergence", eq. 5; Du & Mordatch 2019, eq. 2); α is the energy-magnitude
    regulariser of Du & Mordatch 2019 (Sec. 3.3).
    """
    if alpha < 0:
        raise UsageError(f"alpha must be >= 0, got {alpha}")
    loss = e_pos.mean() - e_neg.mean()
    if alpha:
        loss = loss + alpha * ((e_pos**2).mean() + (e_neg**2).mean())
    return loss


def replay_starts(
    buffer: Tensor,
    n: int,
    noise: Tensor,
    *,
    reinit: float,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, Tensor]:
    """Starting points of ``n`` persistent chains: indices ``idx`` drawn uniformly from the
    replay ``buffer`` [N, ...] and starts ``buffer[idx]``, each replaced with probability
    ``reinit`` by the matching row of ``noise`` [n, ...] (Du & Mordatch 2019, Sec. 3.1: 95% from
    the buffer, 5% fresh noise).  Write the chains' ends back to ``buffer[idx]``."""
    if not 0 <= reinit <= 1:
        raise UsageError(f"reinit must lie in [0, 1], got {reinit}")
    idx = draws.randint(buffer.shape[0], (n,), generator=generator, device=buffer.device)
    fresh = draws.rand(n, generator=generator, device=buffer.device) < reinit
    shape = (-1,) + (1,) * (buffer.dim() - 1)
    return idx, torch.where(fresh.reshape(shape), noise, buffer[idx])


def jem_class_energy(logits: Tensor, y: Tensor) -> Tensor:
    """E(x, y) = -f(x)[y] per sample, [B]: the class-conditional energy of a classifier's logits
    f(x) [B, K] (Grathwohl et al. 2020, "Your Classifier is Secretly an Energy Based Model",
    eq. 5: p(x, y) = exp f(x)[y] / Z)."""
    return -logits.gather(1, y.long().reshape(-1, 1)).squeeze(1)


def jem_marginal_energy(logits: Tensor) -> Tensor:
    """E(x) = -log Σ_y exp f(x)[y] per sample, [B]: the energy of the marginal
    p(x) = Σ_y p(x, y) (Grathwohl et al. 2020, eq. 6)."""
    return -torch.logsumexp(logits, dim=1)


def jem_class_log_probs(logits: Tensor) -> Tensor:
    """log p(y | x) = f(x)[y] - logsumexp_y' f(x)[y'], [B, K]: p(x, y) / p(x), the softmax
    classifier the energies share (Grathwohl et al. 2020, eq. 7)."""
    return torch.log_softmax(logits, dim=1)
