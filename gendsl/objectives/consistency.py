"""Consistency models: distillation, training and sampling (Song et al. 2023, "Consistency
Models", ICML; Song & Dhariwal 2023, "Improved Techniques for Training Consistency Models").

Everything works in the variance-exploding (EDM) parameterisation x_σ = x0 + σ ε, whose
probability-flow ODE is dx/dσ = -σ ∇log p_σ(x) (Karras et al. 2022, eq. 4 with σ(t) = t).  An
affine process x_t = a_t x0 + s_t ε maps onto it by y = x_t / a_t with σ = s_t / a_t
(:func:`~gendsl.processes.edm.sigma_of_t`, :func:`ve_score_from_process`), so a VP teacher
can drive distillation.

A consistency function is any callable ``f(x, sigma) -> x0`` with ``sigma`` of shape [B];
:func:`consistency_fn` builds one from a raw network with the boundary condition f(x, σ_min) = x.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from gendsl.errors import UsageError
from gendsl.objectives import draws
from gendsl.processes import Process, expand_like
from gendsl.processes.edm import c_in, sigma_of_t, t_of_sigma

__all__ = [
    "SIGMA_DATA",
    "SIGMA_MAX",
    "SIGMA_MIN",
    "c_out",
    "c_skip",
    "consistency_distillation_loss",
    "consistency_fn",
    "consistency_from_denoiser",
    "consistency_sample",
    "consistency_training_loss",
    "ct_ema_decay",
    "ct_num_steps",
    "distance",
    "ict_num_steps",
    "karras_sigmas",
    "ode_step",
    "process_sigma_range",
    "ve_score_from_process",
]

ConsistencyFn = Callable[[Tensor, Tensor], Tensor]
VEScoreFn = Callable[[Tensor, Tensor], Tensor]
SOLVERS = ("euler", "heun")
METRICS = ("l2", "pseudo_huber")
WEIGHTINGS = ("uniform", "reciprocal")

#: σ_min and σ_max of the EDM noise range (Karras et al. 2022, Sec. 5; Song et al. 2023, Sec. 5).
SIGMA_MIN, SIGMA_MAX = 0.002, 80.0
#: σ_data of the consistency parameterisation (Song et al. 2023, appendix C).
SIGMA_DATA = 0.5


def _check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise UsageError(f"{name} must be one of {', '.join(choices)}; got {value!r}")


def c_skip(
    sigma: Tensor, *, sigma_data: float = SIGMA_DATA, sigma_min: float = SIGMA_MIN
) -> Tensor:
    """c_skip(σ) = σ_data² / ((σ - σ_min)² + σ_data²) (Song et al. 2023, eq. 10 / appendix C)."""
    return sigma_data**2 / ((sigma - sigma_min) ** 2 + sigma_data**2)


def c_out(
    sigma: Tensor, *, sigma_data: float = SIGMA_DATA, sigma_min: float = SIGMA_MIN
) -> Tensor:
    """c_out(σ) = σ_data (σ - σ_min) / √(σ_data² + σ²) (Song et al. 2023, appendix C)."""
    return sigma_data * (sigma - sigma_min) / torch.sqrt(sigma_data**2 + sigma**2)


def consistency_fn(
    F_theta: Callable[[Tensor, Tensor], Tensor],
    x: Tensor,
    sigma: Tensor,
    *,
    sigma_data: float = SIGMA_DATA,
    sigma_min: float = SIGMA_MIN,
) -> Tensor:
    """f_θ(x, σ) = c_skip(σ) x + c_out(σ) F_θ(c_in(σ) x, σ) with ``sigma`` [B]; since
    c_skip(σ_min) = 1 and c_out(σ_min) = 0, f_θ(x, σ_min) = x exactly (Song et al. 2023, eq. 5)."""
    skip = expand_like(c_skip(sigma, sigma_data=sigma_data, sigma_min=sigma_min), x)
    out = expand_like(c_out(sigma, sigma_data=sigma_data, sigma_min=sigma_min), x)
    return skip * x + out * F_theta(expand_like(c_in(sigma, sigma_data=sigma_data), x) * x, sigma)


def consistency_from_denoiser(
    denoiser: Callable[[Tensor, Tensor], Tensor],
    x: Tensor,
    sigma: Tensor,
    *,
    sigma_data: float = SIGMA_DATA,
    sigma_min: float = SIGMA_MIN,
) -> Tensor:
    """The consistency function whose network is the one a denoiser D(x, σ) ≈ E[x0 | x] implies.

    An EDM denoiser is D = ĉ_skip(σ) x + ĉ_out(σ) F with ĉ_skip = σ_d² / (σ² + σ_d²) and
    ĉ_out = σ σ_d / √(σ² + σ_d²) (Karras et al. 2022, Table 1); its network is
    F = (D - ĉ_skip x) / ĉ_out, and f = c_skip x + c_out F (:func:`consistency_fn`), i.e.

        f(x, σ) = c_skip(σ) x + (σ - σ_min) / σ · (D(x, σ) - ĉ_skip(σ) x),

    since c_out / ĉ_out = (σ - σ_min) / σ.  So f(x, σ_min) = x exactly and f → D as σ_min → 0:
    a consistency model initialised from a trained diffusion model starts as its one-step
    denoiser (Song et al. 2023, Sec. 6, initialise from the pre-trained EDM)."""
    skip = expand_like(c_skip(sigma, sigma_data=sigma_data, sigma_min=sigma_min), x)
    edm_skip = expand_like(sigma_data**2 / (sigma**2 + sigma_data**2), x)
    ratio = expand_like((sigma - sigma_min) / sigma, x)
    return skip * x + ratio * (denoiser(x, sigma) - edm_skip * x)


def karras_sigmas(
    N: int,
    sigma_min: float = SIGMA_MIN,
    sigma_max: float = SIGMA_MAX,
    rho: float = 7.0,
    *,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
) -> Tensor:
    """σ_i = (σ_min^{1/ρ} + (i-1)/(N-1) (σ_max^{1/ρ} - σ_min^{1/ρ}))^ρ, i = 1..N, increasing
    (Karras et al. 2022, eq. 5; Song et al. 2023, Sec. 5)."""
    if N < 2:
        raise UsageError(f"the discretisation needs N >= 2 steps, got {N}")
    if not 0 < sigma_min < sigma_max:
        raise UsageError(f"need 0 < sigma_min < sigma_max, got {sigma_min} and {sigma_max}")
    i = torch.linspace(0, 1, N, device=device, dtype=dtype or torch.get_default_dtype())
    lo, hi = sigma_min ** (1 / rho), sigma_max ** (1 / rho)
    return (lo + i * (hi - lo)) ** rho


def process_sigma_range(process: Process) -> tuple[float, float]:
    """(σ(t_min), σ(T)), the VE noise levels an affine process covers."""
    sig = sigma_of_t(process, torch.tensor([process.t_min, process.T], dtype=torch.float64))
    return float(sig[0]), float(sig[1])


def ve_score_from_process(
    process: Process, score_fn: Callable[[Tensor, Tensor], Tensor]
) -> VEScoreFn:
    """The VE score ∇_y log p_σ(y) = a_t ∇ₓ log p_t(a_t y) at t = t_of_sigma(σ), from the density
    of y = x_t / a_t, p_σ(y) = a_t^D p_t(a_t y)."""

    def ve_score(y: Tensor, sigma: Tensor) -> Tensor:
        t = t_of_sigma(process, sigma)
        a_t = expand_like(process.marginal(t)[0], y)
        return a_t * score_fn(a_t * y, t)

    return ve_score


def _pf_ode_slope(score_fn: VEScoreFn, x: Tensor, sigma: Tensor) -> Tensor:
    """dx/dσ = -σ ∇log p_σ(x) (Karras et al. 2022, eq. 4 with σ(t) = t)."""
    return -expand_like(sigma, x) * score_fn(x, sigma)


def ode_step(
    score_fn: VEScoreFn, x: Tensor, sigma: Tensor, sigma_next: Tensor, *, solver: str = "heun"
) -> Tensor:
    """One Euler or Heun step of the VE PF-ODE from σ to σ_next, both [B]
    (Karras et al. 2022, Algorithm 1; Song et al. 2023, Algorithm 2 uses it as Φ)."""
    _check_choice("solver", solver, SOLVERS)
    h = expand_like(sigma_next - sigma, x)
    d = _pf_ode_slope(score_fn, x, sigma)
    x_euler = x + h * d
    if solver == "euler":
        return x_euler
    return x + 0.5 * h * (d + _pf_ode_slope(score_fn, x_euler, sigma_next))


def distance(a: Tensor, b: Tensor, *, metric: str = "l2", c: float | None = None) -> Tensor:
    """Per-sample d(a, b): ``l2`` is ‖a - b‖² (Song et al. 2023), ``pseudo_huber`` is
    √(‖a - b‖² + c²) - c with c = 0.00054 √D by default (Song & Dhariwal 2023, Sec. 3.3)."""
    _check_choice("metric", metric, METRICS)
    sq = (a - b).reshape(a.shape[0], -1).pow(2).sum(dim=1)
    if metric == "l2":
        return sq
    c = 0.00054 * math.sqrt(a[0].numel()) if c is None else c
    return torch.sqrt(sq + c**2) - c


def _adjacent_sigmas(
    sigmas: Tensor, batch: int, generator: torch.Generator | None, x: Tensor
) -> tuple[Tensor, Tensor]:
    """(σ_n, σ_{n+1}) [B] with n ~ U{1, ..., N-1} over the increasing ``sigmas`` [N]."""
    sigmas = sigmas.to(device=x.device, dtype=x.dtype)
    n = draws.randint(0, sigmas.shape[0] - 1, (batch,), generator=generator, device=x.device)
    return sigmas[n], sigmas[n + 1]


def _loss_weight(weighting: str, sigma: Tensor, sigma_next: Tensor) -> Tensor:
    """λ = 1 (Song et al. 2023) or λ = 1/(σ_{n+1} - σ_n) (Song & Dhariwal 2023, Sec. 3.4)."""
    _check_choice("weighting", weighting, WEIGHTINGS)
    return torch.ones_like(sigma) if weighting == "uniform" else 1.0 / (sigma_next - sigma)


def consistency_distillation_loss(
    f_theta: ConsistencyFn,
    f_target: ConsistencyFn,
    teacher_score: VEScoreFn,
    x0: Tensor,
    sigmas: Tensor,
    *,
    solver: str = "heun",
    metric: str = "l2",
    weighting: str = "uniform",
    generator: torch.Generator | None = None,
) -> Tensor:
    """λ d(f_θ(x_{σ_{n+1}}, σ_{n+1}), f_θ⁻(x̂_{σ_n}, σ_n)) per sample (Song et al. 2023, Alg. 2):
    x_{σ_{n+1}} = x0 + σ_{n+1} z and x̂_{σ_n} is one teacher PF-ODE step (:func:`ode_step`).
    ``f_target`` is the EMA / stop-gradient copy; its output is detached."""
    sigma, sigma_next = _adjacent_sigmas(sigmas, x0.shape[0], generator, x0)
    z = draws.randn(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
    x_next = x0 + expand_like(sigma_next, x0) * z
    with torch.no_grad():
        x_hat = ode_step(teacher_score, x_next, sigma_next, sigma, solver=solver)
        target = f_target(x_hat, sigma)
    d = distance(f_theta(x_next, sigma_next), target, metric=metric)
    return _loss_weight(weighting, sigma, sigma_next) * d


def consistency_training_loss(
    f_theta: ConsistencyFn,
    f_target: ConsistencyFn,
    x0: Tensor,
    sigmas: Tensor,
    *,
    metric: str = "l2",
    weighting: str = "uniform",
    generator: torch.Generator | None = None,
) -> Tensor:
    """λ d(f_θ(x0 + σ_{n+1} z, σ_{n+1}), f_θ⁻(x0 + σ_n z, σ_n)) per sample, the same z at both
    levels and no teacher (Song et al. 2023, Algorithm 3)."""
    sigma, sigma_next = _adjacent_sigmas(sigmas, x0.shape[0], generator, x0)
    z = draws.randn(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
    with torch.no_grad():
        target = f_target(x0 + expand_like(sigma, x0) * z, sigma)
    d = distance(f_theta(x0 + expand_like(sigma_next, x0) * z, sigma_next), target, metric=metric)
    return _loss_weight(weighting, sigma, sigma_next) * d


def ct_num_steps(k: int, K: int, *, s0: int = 2, s1: int = 150) -> int:
    """N(k) = ⌈√(k/K ((s1 + 1)² - s0²) + s0²) - 1⌉ + 1 at training step k of K
    (Song et al. 2023, appendix C)."""
    return math.ceil(math.sqrt(k / K * ((s1 + 1) ** 2 - s0**2) + s0**2) - 1) + 1


def ct_ema_decay(k: int, K: int, *, s0: int = 2, s1: int = 150, mu0: float = 0.9) -> float:
    """μ(k) = exp(s0 log μ0 / N(k)), the target-network EMA rate (Song et al. 2023, appendix C)."""
    return math.exp(s0 * math.log(mu0) / ct_num_steps(k, K, s0=s0, s1=s1))


def ict_num_steps(k: int, K: int, *, s0: int = 10, s1: int = 1280) -> int:
    """N(k) = min(s0 2^⌊k/K'⌋, s1) + 1 with K' = ⌊K / (log2⌊s1/s0⌋ + 1)⌋, the doubling curriculum
    (Song & Dhariwal 2023, eq. 9)."""
    K_prime = math.floor(K / (math.log2(s1 // s0) + 1))
    return min(s0 * 2 ** (k // K_prime), s1) + 1


@torch.no_grad()
def consistency_sample(
    f: ConsistencyFn,
    shape: Sequence[int],
    sigmas: Sequence[float] | Tensor,
    *,
    sigma_min: float = SIGMA_MIN,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
) -> Tensor:
    """Multistep consistency sampling (Song et al. 2023, Algorithm 1): x = f(σ_1 z, σ_1), then for
    each later level τ, x = f(x + √(τ² - σ_min²) z, τ).  ``sigmas`` is decreasing and starts at
    σ_max; one entry gives one-step sampling."""
    levels = torch.as_tensor(sigmas, device=device, dtype=dtype or torch.get_default_dtype())
    if levels.ndim != 1 or levels.numel() == 0:
        raise UsageError(f"sigmas must be a non-empty list of noise levels, got {sigmas}")
    B = shape[0]
    z = draws.randn(tuple(shape), generator=generator, device=levels.device, dtype=levels.dtype)
    x = f(levels[0] * z, levels[0].expand(B))
    for tau in levels[1:]:
        z = draws.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        x = f(x + torch.sqrt(tau**2 - sigma_min**2) * z, tau.expand(B))
    return x
