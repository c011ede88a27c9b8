"""Forward against reverse KL: fitting one Gaussian to a bimodal target, both ways.

Minimising the forward divergence ``KL(p ‖ q) = E_p[log p − log q]`` over q is maximum
likelihood on samples of p: for a Gaussian family its minimiser matches the moments,
``μ = E_p x``, ``σ² = Var_p x`` (mode covering: q spreads over both modes).  Minimising the
reverse divergence ``KL(q ‖ p) = E_q[log q − log p]`` (the variational-inference direction,
gradients by reparameterisation ``x = μ + σ ε``) is mode seeking: q settles on one mode.
(Bishop 2006, "Pattern Recognition and Machine Learning", §10.1.2 and Fig. 10.3; Murphy 2012,
§21.2.2.)  ``examples/kl_directions.py`` draws the figure and prints the table.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import Tensor
from torch.distributions import Categorical, Distribution, MixtureSameFamily, Normal

__all__ = ["bimodal", "fit_gaussian", "kl_on_grid", "moment_match"]

Direction = Literal["forward", "reverse"]


def bimodal(separation: float = 2.0, std: float = 0.5) -> MixtureSameFamily:
    """``p = ½ N(−separation, std²) + ½ N(separation, std²)`` on the real line."""
    means = torch.tensor([-separation, separation], dtype=torch.float64)
    scales = torch.full((2,), std, dtype=torch.float64)
    weights = torch.full((2,), 0.5, dtype=torch.float64)
    return MixtureSameFamily(Categorical(probs=weights), Normal(means, scales))


def moment_match(p: MixtureSameFamily) -> tuple[float, float]:
    """The forward-KL minimiser over Gaussians: ``(E_p x, sqrt(Var_p x))``, from the mixture's
    closed-form mean and variance (law of total variance)."""
    return float(p.mean), math.sqrt(float(p.variance))


def _loss(p: Distribution, q: Normal, direction: Direction, n: int, gen: torch.Generator):
    """A Monte Carlo estimate of the divergence up to a constant in q's parameters."""
    if direction == "forward":  # −E_p log q: KL(p ‖ q) − H(p)
        return -q.log_prob(_sample(p, n, gen)).mean()
    eps = torch.randn(n, generator=gen, dtype=torch.float64)
    x = q.loc + q.scale * eps  # reparameterised: the gradient flows through x
    return (q.log_prob(x) - p.log_prob(x)).mean()


def _sample(p: Distribution, n: int, gen: torch.Generator) -> Tensor:
    """``n`` draws from the mixture with an explicit generator."""
    probs = p.mixture_distribution.probs
    which = torch.multinomial(probs, n, replacement=True, generator=gen)
    base = p.component_distribution
    eps = torch.randn(n, generator=gen, dtype=torch.float64)
    return base.loc[which] + base.scale[which] * eps


def fit_gaussian(
    p: Distribution,
    *,
    direction: Direction,
    init: tuple[float, float] = (0.5, 1.0),
    steps: int = 1500,
    n: int = 512,
    lr: float = 0.03,
    generator: torch.Generator,
) -> tuple[float, float]:
    """``(μ, σ)`` of the Gaussian q minimising ``KL(p ‖ q)`` (``forward``) or ``KL(q ‖ p)``
    (``reverse``) by Adam on Monte Carlo estimates (``n`` draws a step, the step size decayed
    to zero by a cosine schedule so that the iterate settles)."""
    loc = torch.tensor(init[0], dtype=torch.float64, requires_grad=True)
    log_scale = torch.tensor(math.log(init[1]), dtype=torch.float64, requires_grad=True)
    opt = torch.optim.Adam([loc, log_scale], lr=lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps)
    for _ in range(steps):
        opt.zero_grad()
        _loss(p, Normal(loc, log_scale.exp()), direction, n, generator).backward()
        opt.step()
        schedule.step()
    return float(loc.detach()), float(log_scale.detach().exp())


def kl_on_grid(p: Distribution, q: Distribution, grid: Tensor) -> float:
    """``KL(p ‖ q) = ∫ p log(p / q) dx`` by the trapezoidal rule on ``grid`` (1-D, wide
    enough to hold p's mass)."""
    log_p, log_q = p.log_prob(grid), q.log_prob(grid)
    return float(torch.trapezoid(log_p.exp() * (log_p - log_q), grid))
