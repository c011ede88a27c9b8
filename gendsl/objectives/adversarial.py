"""Adversarial objectives: the critic's and the generator's losses and the critic regularisers.

A critic ``D`` maps samples to one real number each.  For the GAN losses that number is a logit:
the discriminator's probability of "real" is σ(D(x)), so log σ(d) = -softplus(-d) and
log(1 - σ(d)) = -softplus(d) are computed without overflow.  Every loss is a mean over the batch;
the critic's and the generator's are separate functions because they are minimised by separate
players (alternating updates, Goodfellow et al. 2014, Algorithm 1).

=================  ===========================================  ==============================
loss               critic minimises                             generator minimises
=================  ===========================================  ==============================
gan (minimax)      -E log σ(D(x)) - E log(1 - σ(D(G(z))))        E log(1 - σ(D(G(z))))
gan (nonsat.)      same                                         -E log σ(D(G(z)))
wasserstein        E D(G(z)) - E D(x)                            -E D(G(z))
hinge              E relu(1 - D(x)) + E relu(1 + D(G(z)))        -E D(G(z))
=================  ===========================================  ==============================
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gendsl.errors import UsageError
from gendsl.objectives import draws
from gendsl.objectives.eager import eager

__all__ = [
    "GAN_FORMS",
    "clip_weights_",
    "dragan_penalty",
    "gan_critic_loss",
    "gan_generator_loss",
    "gradient_norm_penalty",
    "gradient_penalty",
    "hinge_critic_loss",
    "hinge_generator_loss",
    "wasserstein_critic_loss",
    "wasserstein_generator_loss",
]

Critic = Callable[[Tensor], Tensor]
GAN_FORMS = ("minimax", "nonsaturating")


def gan_critic_loss(d_real: Tensor, d_fake: Tensor) -> Tensor:
    """-E log σ(D(x)) - E log(1 - σ(D(G(z)))) = E softplus(-D(x)) + E softplus(D(G(z))), the
    discriminator's binary cross-entropy (Goodfellow et al. 2014, "Generative Adversarial Nets",
    eq. 1).  At the optimal discriminator D* = p/(p + q) it equals log 4 - 2 JSD(p ‖ q)."""
    return F.softplus(-d_real).mean() + F.softplus(d_fake).mean()


def gan_generator_loss(d_fake: Tensor, *, form: str = "nonsaturating") -> Tensor:
    """The generator's GAN loss (Goodfellow et al. 2014, eq. 1 and Sec. 3):
    ``minimax``: E log(1 - σ(D(G(z)))) = -E softplus(D(G(z)));
    ``nonsaturating``: -E log σ(D(G(z))) = E softplus(-D(G(z)))."""
    if form == "minimax":
        return -F.softplus(d_fake).mean()
    if form == "nonsaturating":
        return F.softplus(-d_fake).mean()
    raise UsageError(f"gan form must be one of {', '.join(GAN_FORMS)}, got {form!r}")


def wasserstein_critic_loss(c_real: Tensor, c_fake: Tensor) -> Tensor:
    """E D(G(z)) - E D(x): minus the Kantorovich-Rubinstein estimate of W1 for a 1-Lipschitz
    critic (Arjovsky, Chintala & Bottou 2017, "Wasserstein GAN", eq. 3)."""
    return c_fake.mean() - c_real.mean()


def wasserstein_generator_loss(c_fake: Tensor) -> Tensor:
    """-E D(G(z)) (Arjovsky et al. 2017, Algorithm 1); also the generator loss of the hinge GAN
    (Miyato et al. 2018, eq. 17)."""
    return -c_fake.mean()


def hinge_critic_loss(d_real: Tensor, d_fake: Tensor) -> Tensor:
    """E max(0, 1 - D(x)) + E max(0, 1 + D(G(z))) (Lim & Ye 2017, "Geometric GAN"; Miyato et
    al. 2018, "Spectral Normalization for GANs", eq. 16)."""
    return torch.relu(1 - d_real).mean() + torch.relu(1 + d_fake).mean()


#: The hinge GAN's generator minimises -E D(G(z)), the same as the Wasserstein generator.
hinge_generator_loss = wasserstein_generator_loss


def _per_sample_norm(g: Tensor) -> Tensor:
    return g.reshape(g.shape[0], -1).norm(dim=1)


@eager  # differentiated twice: eager under torch.compile
def gradient_norm_penalty(critic: Critic, x_hat: Tensor) -> Tensor:
    """E (‖∇ D(x̂)‖₂ - 1)², the two-sided gradient-norm penalty at the points ``x_hat``
    (Gulrajani et al. 2017, eq. 3).  Differentiable in the critic's parameters (the gradient is
    taken with ``create_graph``), also when called under ``torch.no_grad``."""
    with torch.enable_grad():
        x_hat = x_hat.detach().requires_grad_(True)
        (grad,) = torch.autograd.grad(critic(x_hat).sum(), x_hat, create_graph=True)
        return ((_per_sample_norm(grad) - 1) ** 2).mean()


def gradient_penalty(
    critic: Critic, x: Tensor, x_fake: Tensor, *, generator: torch.Generator | None = None
) -> Tensor:
    """WGAN-GP: the gradient-norm penalty at x̂ = ε x + (1 - ε) x̃, ε ~ U[0, 1] per sample, on
    straight lines between real and generated points (Gulrajani et al. 2017, "Improved Training
    of Wasserstein GANs", Algorithm 1).  Multiply by λ (10 in the paper)."""
    shape = (x.shape[0],) + (1,) * (x.dim() - 1)
    eps = draws.rand(shape, generator=generator, device=x.device, dtype=x.dtype)
    return gradient_norm_penalty(critic, eps * x + (1 - eps) * x_fake.detach())


def dragan_penalty(
    critic: Critic,
    x: Tensor,
    *,
    scale: float = 0.5,
    generator: torch.Generator | None = None,
) -> Tensor:
    """DRAGAN: the gradient-norm penalty at perturbed real points x̂ = x + δ,
    δ ~ N(0, (scale · std(x))² I) with std(x) the batch's standard deviation (Kodali et al. 2017,
    "On Convergence and Stability of GANs", Sec. 4; scale 0.5 as in their experiments).
    Multiply by λ (10 in the paper)."""
    if not scale > 0:
        raise UsageError(f"dragan scale must be > 0, got {scale}")
    delta = draws.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    return gradient_norm_penalty(critic, x + scale * x.std() * delta)


@torch.no_grad()
def clip_weights_(params: Iterable[nn.Parameter], c: float) -> None:
    """Clamp every parameter to [-c, c] in place, WGAN's crude Lipschitz constraint
    (Arjovsky et al. 2017, Algorithm 1, line 7)."""
    if not c > 0:
        raise UsageError(f"clip c must be > 0, got {c}")
    for p in params:
        p.clamp_(-c, c)
