"""Denoising score matching, derived from the forward kernel, and its relatives.

The forward process perturbs data as x_t = a_t x0 + s_t ε with ε ~ N(0, I), so the kernel's score
is ∇ log p(x_t | x0) = -ε / s_t.  Every parameterisation a network can use (``eps``, ``x0``, ``v``,
``score``) is an affine function of the score estimate at fixed (x_t, t), so its squared error is a
time-dependent multiple c(t) of the score error (:func:`native_factor`):

=========  ====================  ==================================
predict    target                ‖pred - target‖² = c(t) ‖ŝ - ∇log p(x_t|x0)‖²
=========  ====================  ==================================
score      -ε / s_t              c = 1
eps        ε                     c = s_t²
x0         x0                    c = s_t⁴ / a_t²
v          a_t ε - s_t x0        c = s_t² (a_t² + s_t²)² / a_t²
=========  ====================  ==================================

A *weighting* is a score-space weight λ(t) (:func:`score_weight`); the loss of any
parameterisation is (λ(t)/c(t)) ‖pred - target‖², so all four minimise the same weighted
score-matching objective ∫ λ(t) E‖ŝ - ∇log p_t‖² dt (Vincent 2011; Song et al. 2021).  The
``"simple"`` weighting sets λ = c, i.e. the plain squared error in the network's own space (for
``eps`` this is L_simple of Ho et al. 2020).

Losses are per sample: summed over the non-batch dimensions, one value per row of ``x0``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from gendsl.errors import UsageError
from gendsl.objectives import draws
from gendsl.objectives.divergence import divergence_hutchinson
from gendsl.objectives.eager import eager
from gendsl.processes import (
    DiscreteChain,
    Process,
    ScoreFn,
    eps_from_v,
    expand_like,
    score_from_eps,
    score_from_x0,
    v_from_eps_x0,
)

__all__ = [
    "PREDICTIONS",
    "TIME_SAMPLING",
    "WEIGHTINGS",
    "ddpm_simple_loss",
    "dsm_fixed_sigma",
    "dsm_loss",
    "native_factor",
    "native_target",
    "perturb",
    "sample_time",
    "score_fn_from_pred",
    "score_from_prediction",
    "score_weight",
    "sliced_score_matching",
    "weighted_dsm",
]

PredFn = Callable[[Tensor, Tensor], Tensor]
PREDICTIONS = ("eps", "x0", "v", "score")
WEIGHTINGS = ("simple", "none", "likelihood", "sigma2", "min_snr")
TIME_SAMPLING = ("uniform", "importance")


def _check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise UsageError(f"{name} must be one of {', '.join(choices)}; got {value!r}")


def _sum_per_sample(v: Tensor) -> Tensor:
    """Σ over every non-batch dimension: shape [B, ...] -> [B]."""
    return v.reshape(v.shape[0], -1).sum(dim=1)


def perturb(x0: Tensor, eps: Tensor, a_t: Tensor, s_t: Tensor) -> Tensor:
    """x_t = a_t x0 + s_t ε, the draw from the Gaussian kernel p(x_t | x0)
    (Song et al. 2021, eq. 29; a_t, s_t of shape [B] broadcast over x0)."""
    return expand_like(a_t, x0) * x0 + expand_like(s_t, x0) * eps


def native_target(predict: str, x0: Tensor, eps: Tensor, a_t: Tensor, s_t: Tensor) -> Tensor:
    """The regression target of a parameterisation: ε (Ho et al. 2020), x0, the velocity
    v = a_t ε - s_t x0 (Salimans & Ho 2022, eq. 10 in the a/s notation) or the kernel score
    ∇ log p(x_t | x0) = -ε / s_t (Vincent 2011; Song et al. 2021, eq. 7)."""
    _check_choice("predict", predict, PREDICTIONS)
    if predict == "eps":
        return eps
    if predict == "x0":
        return x0
    if predict == "v":
        return v_from_eps_x0(eps, x0, a_t, s_t)
    return score_from_eps(eps, s_t)


def score_from_prediction(
    predict: str, pred: Tensor, x_t: Tensor, a_t: Tensor, s_t: Tensor
) -> Tensor:
    """The score estimate ŝ(x_t, t) implied by a network output of any parameterisation
    (ŝ = -ε̂/s_t, Tweedie's -(x_t - a_t x̂0)/s_t², and ε̂ from v̂ by inverting the rotation)."""
    _check_choice("predict", predict, PREDICTIONS)
    if predict == "score":
        return pred
    if predict == "eps":
        return score_from_eps(pred, s_t)
    if predict == "x0":
        return score_from_x0(x_t, pred, a_t, s_t)
    return score_from_eps(eps_from_v(x_t, pred, a_t, s_t), s_t)


def score_fn_from_pred(process: Process, pred_fn: PredFn, *, predict: str) -> ScoreFn:
    """Wrap a network ``pred_fn(x_t, t)`` of parameterisation ``predict`` as a score function
    ``(x, t) -> ∇log p_t(x)`` for samplers and :mod:`gendsl.metrics.pf_ode`."""
    _check_choice("predict", predict, PREDICTIONS)

    def score_fn(x_t: Tensor, t: Tensor) -> Tensor:
        a_t, s_t = process.marginal(t)
        return score_from_prediction(predict, pred_fn(x_t, t), x_t, a_t, s_t)

    return score_fn


def native_factor(predict: str, a_t: Tensor, s_t: Tensor) -> Tensor:
    """c(t) with ‖pred - target‖² = c(t) ‖ŝ - ∇log p(x_t|x0)‖² at fixed x_t.

    From x_t = a x0 + s ε: ε = -s ŝ, x0 = (x_t - s ε)/a, and v = a ε - s x0
    = ((a² + s²)/a) ε - (s/a) x_t, so the errors scale by s, s²/a and s (a² + s²)/a.
    """
    _check_choice("predict", predict, PREDICTIONS)
    if predict == "score":
        return torch.ones_like(s_t)
    if predict == "eps":
        return s_t**2
    if predict == "x0":
        return s_t**4 / a_t**2
    return s_t**2 * (a_t**2 + s_t**2) ** 2 / a_t**2


def score_weight(
    weight: str, process: Process, t: Tensor, a_t: Tensor, s_t: Tensor, *, gamma: float = 5.0
) -> Tensor:
    """λ(t), the weight on the score error ‖ŝ - ∇log p(x_t|x0)‖².

    - ``likelihood``: λ = g(t)², which makes the loss a bound on the negative log-likelihood
      (Song et al. 2021b, "Maximum Likelihood Training of Score-Based Diffusion Models", Thm. 1).
    - ``sigma2``: λ = s_t² (Song et al. 2021, eq. 7), i.e. the unweighted ε error.
    - ``min_snr``: λ = s_t² min(SNR, γ)/SNR with SNR = a_t²/s_t² (Hang et al. 2023, "Efficient
      Diffusion Training via Min-SNR Weighting Strategy", eq. 7 written for the ε error).

    ``simple``/``none`` depend on the parameterisation and are handled by :func:`weighted_dsm`.
    """
    _check_choice("weight", weight, ("likelihood", "sigma2", "min_snr"))
    if weight == "likelihood":
        return process.g(t) ** 2
    if weight == "sigma2":
        return s_t**2
    if not gamma > 0:
        raise UsageError(f"min_snr gamma must be > 0, got {gamma}")
    snr = a_t**2 / s_t**2
    return s_t**2 * torch.clamp(snr, max=gamma) / snr


def weighted_dsm(
    process: Process,
    pred_fn: PredFn,
    x0: Tensor,
    t: Tensor,
    eps: Tensor,
    *,
    predict: str = "eps",
    weight: str = "simple",
    gamma: float = 5.0,
) -> Tensor:
    """(λ(t)/c(t)) ‖pred_fn(x_t, t) - target‖² per sample, at given times ``t`` [B] and noise ε.

    λ is :func:`score_weight` (λ = c for ``simple``/``none``) and c is :func:`native_factor`;
    the expectation over t ~ U[t_min, T], x0 and ε is the weighted denoising score matching
    objective (Vincent 2011; Song et al. 2021, eq. 7).
    """
    _check_choice("predict", predict, PREDICTIONS)
    _check_choice("weight", weight, WEIGHTINGS)
    a_t, s_t = process.marginal(t)
    x_t = perturb(x0, eps, a_t, s_t)
    err = _sum_per_sample((pred_fn(x_t, t) - native_target(predict, x0, eps, a_t, s_t)) ** 2)
    if weight in ("simple", "none"):
        return err
    lam = score_weight(weight, process, t, a_t, s_t, gamma=gamma)
    return lam / native_factor(predict, a_t, s_t) * err


def sample_time(
    process: Process,
    batch: int,
    *,
    time: str = "uniform",
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
) -> tuple[Tensor, Tensor]:
    """Times t [B] in [t_min, T] and importance factors w [B] with E_q[w h(t)] = E_U[h(t)].

    ``uniform``: t ~ U[t_min, T], w = 1.  ``importance``: t ~ q(t) ∝ g(t)²/s_t², the proposal of
    Song et al. 2021b (Sec. 5) and Huang et al. 2021 for the likelihood weighting, which makes the
    ε-space weight g²/s² constant.  For every affine process g²/s² = d log s²/dt - 2 d log a/dt
    = -dλ/dt with λ the log-SNR, so q is uniform in λ: draw λ ~ U[λ(T), λ(t_min)] and invert,
    t = λ⁻¹(λ) (Kingma et al. 2021).  Then q(t) = (g²/s²)/Z with Z = λ(t_min) - λ(T) and
    w = 1 / ((T - t_min) q(t)).
    """
    _check_choice("time", time, TIME_SAMPLING)
    u = draws.rand(batch, generator=generator, device=device, dtype=dtype)
    if time == "uniform":
        return process.t_min + (process.T - process.t_min) * u, torch.ones_like(u)
    ends = torch.tensor([process.t_min, process.T], device=u.device, dtype=u.dtype)
    lam_hi, lam_lo = process.log_snr(ends).unbind()
    t = process.t_from_log_snr(lam_hi - u * (lam_hi - lam_lo))
    _, s_t = process.marginal(t)
    q_t = process.g(t) ** 2 / s_t**2 / (lam_hi - lam_lo)
    return t, 1.0 / ((process.T - process.t_min) * q_t)


def dsm_loss(
    process: Process,
    pred_fn: PredFn,
    x0: Tensor,
    *,
    predict: str = "eps",
    weight: str = "simple",
    time: str = "uniform",
    gamma: float = 5.0,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Per-sample Monte Carlo estimate of E_{t~U[t_min,T]} E_ε (λ/c) ‖pred - target‖².

    Draws t with :func:`sample_time` and ε ~ N(0, I), then returns importance factor times
    :func:`weighted_dsm`.  With ``weight="likelihood"``, ½ (T - t_min) times the expectation is the
    score-matching term of the likelihood bound of Song et al. 2021b (Thm. 1).
    """
    t, iw = sample_time(
        process, x0.shape[0], time=time, generator=generator, device=x0.device, dtype=x0.dtype
    )
    eps = draws.randn(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
    loss = weighted_dsm(process, pred_fn, x0, t, eps, predict=predict, weight=weight, gamma=gamma)
    return iw * loss


def ddpm_simple_loss(
    chain: DiscreteChain,
    eps_fn: PredFn,
    x0: Tensor,
    *,
    generator: torch.Generator | None = None,
) -> Tensor:
    """L_simple = ‖ε - ε_θ(√ᾱ_k x0 + √(1 - ᾱ_k) ε, k/K)‖² per sample, k ~ U{1, ..., K}
    (Ho et al. 2020, "Denoising Diffusion Probabilistic Models", eq. 14).

    ``chain.alphas_cumprod[k - 1]`` is ᾱ_k; the network sees the chain's time t = k/K.
    """
    alphas_cumprod = chain.alphas_cumprod_like(x0)
    K = alphas_cumprod.shape[0]
    k = draws.randint(1, K + 1, (x0.shape[0],), generator=generator, device=x0.device)
    eps = draws.randn(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
    abar = alphas_cumprod[k - 1]
    x_k = perturb(x0, eps, abar.sqrt(), (1 - abar).sqrt())
    return _sum_per_sample((eps_fn(x_k, k.to(x0.dtype) / K) - eps) ** 2)


def dsm_fixed_sigma(
    score_fn: Callable[[Tensor], Tensor],
    x: Tensor,
    sigma: float,
    *,
    generator: torch.Generator | None = None,
) -> Tensor:
    """½ ‖s(x̃) - (x - x̃)/σ²‖² = ½ ‖s(x + σ z) + z/σ‖² per sample, z ~ N(0, I)
    (Vincent 2011, "A Connection Between Score Matching and Denoising Autoencoders", eq. 11)."""
    if not sigma > 0:
        raise UsageError(f"dsm sigma must be > 0, got {sigma}")
    z = draws.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    return 0.5 * _sum_per_sample((score_fn(x + sigma * z) + z / sigma) ** 2)


@eager  # differentiated twice: eager under torch.compile
def sliced_score_matching(
    score_fn: Callable[[Tensor], Tensor],
    x: Tensor,
    projections: int | Tensor = 1,
    *,
    variance_reduction: bool = True,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Sliced score matching per sample (Song et al. 2019, "Sliced Score Matching", eq. 7):

    J = (1/M) Σ_m [ v_mᵀ ∇ₓ(v_mᵀ s(x)) + ½ (v_mᵀ s(x))² ],

    or with ``variance_reduction`` (SSM-VR, eq. 8) the last term replaced by its expectation
    ½ ‖s(x)‖² (valid as E[v vᵀ] = I).  ``projections`` is a count M of standard Gaussian
    directions, or a tensor [M, *x.shape] of directions.  The result stays differentiable in the
    parameters of ``score_fn`` (the Jacobian-vector products use ``create_graph``).
    """
    if isinstance(projections, int):
        if projections < 1:
            raise UsageError(f"ssm projections must be >= 1, got {projections}")
        shape = (projections, *x.shape)
        projections = draws.randn(shape, generator=generator, device=x.device, dtype=x.dtype)
    with torch.enable_grad():
        x = x.detach().requires_grad_(True)
        s = score_fn(x)
        terms = []
        for v in projections:
            second = (
                0.5 * _sum_per_sample(s**2)
                if variance_reduction
                else 0.5 * _sum_per_sample(s * v) ** 2
            )
            # vᵀ ∇ₓ(vᵀ s(x)): Hutchinson's estimate of tr ∇ₓ s with the direction v
            terms.append(divergence_hutchinson(s, x, v, create_graph=True) + second)
    return torch.stack(terms).mean(dim=0)
