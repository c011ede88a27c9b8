"""The Kantorovich–Rubinstein dual of W1 as a trained critic estimates it, next to the exact W1.

``W1(P, Q) = sup_{‖f‖_L ≤ 1} E_P f(x) − E_Q f(x)`` (Villani 2009, "Optimal Transport",
Remark 6.5); a WGAN critic f, kept K-Lipschitz by weight clipping (Arjovsky et al. 2017), a
gradient penalty (Gulrajani et al. 2017) or spectral normalisation (Miyato et al. 2018, K ≤ 1),
gives the lower bound ``E f(x) − E f(G(z)) ≤ K · W1``.  :func:`kr_duality` reports that gap, the
exact W1 of the same two sample sets (POT, :func:`gendsl.metrics.distances.w1`) and the largest
critic gradient norm seen on the samples and between them (a lower bound on K).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from gendsl.metrics.distances import w1

__all__ = ["critic_gap", "kr_duality", "max_gradient_norm"]

Critic = Callable[[Tensor], Tensor]


def critic_gap(critic: Critic, real: Tensor, fake: Tensor) -> float:
    """The dual objective ``E_real f(x) − E_fake f(x)`` on the two sample sets."""
    with torch.no_grad():
        return float(critic(real).mean() - critic(fake).mean())


def max_gradient_norm(
    critic: Critic, real: Tensor, fake: Tensor, *, generator: torch.Generator
) -> float:
    """``max ‖∇f(x)‖`` over the real and fake samples and the random interpolates
    ``ε x_real + (1 − ε) x_fake`` of WGAN-GP (Gulrajani et al. 2017, Algorithm 1): a lower bound
    on f's Lipschitz constant K."""
    eps = torch.rand(len(real), 1, generator=generator).to(real)
    points = torch.cat([real, fake, eps * real + (1 - eps) * fake]).detach().requires_grad_(True)
    with torch.enable_grad():
        (grad,) = torch.autograd.grad(critic(points).sum(), points)
    return float(grad.flatten(1).norm(dim=1).max())


def kr_duality(
    critic: Critic, real: Tensor, fake: Tensor, *, generator: torch.Generator
) -> dict[str, float]:
    """``critic_gap`` (E f(real) − E f(fake)), ``w1`` (exact, POT) and
    ``critic_grad_norm_max`` (see :func:`max_gradient_norm`) for ``real`` and ``fake`` ``[n, D]``
    of the same size."""
    return {
        "critic_gap": critic_gap(critic, real, fake),
        "w1": w1(fake, real),
        "critic_grad_norm_max": max_gradient_norm(critic, real, fake, generator=generator),
    }
