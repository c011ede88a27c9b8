"""The variational bound on −log p(x) of a score-based diffusion model (the "unified view": the
likelihood-weighted denoising score-matching loss is, up to constants, this ELBO).

For an affine forward SDE ``dx = f(t) x dt + g(t) dw`` with kernel ``x_t | x0 ~ N(a_t x0, s_t² I)``
and prior π, Song, Durkan, Murray & Ermon 2021 ("Maximum Likelihood Training of Score-Based
Diffusion Models", NeurIPS: the pointwise bound in its denoising form; Huang et al. 2021) bound the
negative log-likelihood of the model's reverse SDE:

    −log p_θ(x0) ≤ −E_{x_T|x0} log π(x_T)
                   + ½ ∫ E_{x_t|x0}[ g² ‖s_θ(x_t, t) − ∇ log p_{0t}(x_t|x0)‖²
                                    − g² ‖∇ log p_{0t}(x_t|x0)‖² − 2 ∇·(f(t) x_t) ] dt,

with ``∇ log p_{0t}(x_t|x0) = −ε / s_t`` and ``∇·(f x) = D f(t)``.  The time integral runs over
``[t_min, T]``, the times the model is trained on; it is estimated with t drawn uniformly in
log-SNR (the importance proposal of :func:`gendsl.objectives.dsm.sample_time`), the prior term
is in closed form.  The probability-flow ODE's exact likelihood
(:mod:`gendsl.metrics.pf_ode`) is a different model's (the ODE's), so the two are reported side
by side, not one as a bound of the other (Song et al. 2021b).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from gendsl.objectives.dsm import sample_time
from gendsl.processes.base import Process, expand_like

__all__ = ["prior_cross_entropy", "sde_neg_elbo"]

ScoreFn = Callable[[Tensor, Tensor], Tensor]


def prior_cross_entropy(process: Process, x0: Tensor) -> Tensor:
    """``−E_{x_T|x0} log N(x_T; 0, σ_π² I)`` per sample in closed form: with
    ``x_T ~ N(a_T x0, s_T² I)`` it is ``D/2 log(2π σ_π²) + (a_T² ‖x0‖² + D s_T²) / (2 σ_π²)``."""
    t_end = torch.full((1,), process.T, device=x0.device, dtype=x0.dtype)
    a_T, s_T = process.marginal(t_end)
    var_prior = process.prior_std(device=x0.device, dtype=x0.dtype) ** 2
    d = x0[0].numel()
    sq = x0.reshape(x0.shape[0], -1).pow(2).sum(dim=1)
    return 0.5 * d * torch.log(2 * math.pi * var_prior) + (a_T**2 * sq + d * s_T**2) / (
        2 * var_prior
    )


def _integrand(process: Process, score_fn: ScoreFn, x0: Tensor, t: Tensor, eps: Tensor):
    """``g² ‖s_θ − ∇log p_{0t}‖² − g² ‖∇log p_{0t}‖² − 2 D f(t)`` per sample at times ``t``."""
    a_t, s_t = process.marginal(t)
    x_t = expand_like(a_t, x0) * x0 + expand_like(s_t, x0) * eps
    target = -eps / expand_like(s_t, eps)
    err = (score_fn(x_t, t) - target).reshape(len(x0), -1).pow(2).sum(dim=1)
    norm = target.reshape(len(x0), -1).pow(2).sum(dim=1)
    d = x0[0].numel()
    return process.g(t) ** 2 * (err - norm) - 2 * d * process.f(t)


def sde_neg_elbo(
    process: Process,
    score_fn: ScoreFn,
    x0: Tensor,
    *,
    repeats: int = 32,
    generator: torch.Generator | None = None,
) -> Tensor:
    """The bound of the module docstring per sample [B] in nats, the time integral estimated
    with ``repeats`` log-SNR-uniform times per sample (one ε each)."""
    total = torch.zeros(len(x0), device=x0.device, dtype=x0.dtype)
    for _ in range(repeats):
        t, weight = sample_time(
            process, len(x0), time="importance", generator=generator, device=x0.device,
            dtype=x0.dtype,
        )  # fmt: skip
        eps = torch.randn(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
        total += weight * _integrand(process, score_fn, x0, t, eps)
    integral = (process.T - process.t_min) * total / repeats
    return prior_cross_entropy(process, x0) + 0.5 * integral
