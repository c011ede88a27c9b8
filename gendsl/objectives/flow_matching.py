"""Conditional flow matching: regress a velocity field on the velocity of a conditional path.

A declared path ``x_t = α(t) x0 + β(t) x1 + γ(t) w`` with w ~ N(0, I) has, along a fixed
(x0, x1, w), the conditional velocity u_t = α'(t) x0 + β'(t) x1 + γ'(t) w.  The flow-matching
loss

    L(θ) = E_{t ~ U[0, 1], (x0, x1) ~ π, w} ‖v_θ(x_t, t) − u_t‖²

has the same gradient as the regression on the marginal velocity u_t(x) = E[u_t | x_t = x], whose
flow carries p0 to p1 (Lipman et al. 2023, "Flow Matching for Generative Modeling", Thm. 2; Tong
et al. 2024, "Improving and Generalizing Flow-Based Generative Models with Minibatch Optimal
Transport", Thm. 3.1 for couplings π and the noise term; Albergo & Vanden-Eijnden 2023,
"Building Normalizing Flows with Stochastic Interpolants" for general α, β; Liu, Gong & Liu
2023, "Flow Straight and Fast" for the straight path).

:class:`ConditionalPath` follows torchcfm's ``ConditionalFlowMatcher``: hooks :meth:`~
ConditionalPath.mu_t`, :meth:`~ConditionalPath.sigma_t` and :meth:`~ConditionalPath.target`;
:class:`AffinePath` implements them from the coefficient functions the symbolic core derives.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from gendsl.objectives import draws
from gendsl.processes import expand_like

__all__ = [
    "T_EPS",
    "AffinePath",
    "Coefficient",
    "ConditionalPath",
    "VelocityFn",
    "flow_matching_loss",
    "interpolant",
    "sample_time",
    "squared_error",
    "straightness",
]

#: v(x_t, t) with t of shape [B].
VelocityFn = Callable[[Tensor, Tensor], Tensor]
TimeFn = Callable[[Tensor], Tensor]
#: A coefficient of a path: a function of t, or a number when it does not depend on t.
Coefficient = TimeFn | float

#: Training times are drawn from U[T_EPS, 1 − T_EPS]: γ'(t) of the Brownian-bridge paths,
#: σ (1 − 2t) / (2 √(t (1 − t))), is infinite at t = 0 and 1.
T_EPS = 1e-4


def interpolant(
    alpha_t: Tensor, beta_t: Tensor, gamma_t: Tensor, x0: Tensor, x1: Tensor, w: Tensor
) -> Tensor:
    """x_t = α(t) x0 + β(t) x1 + γ(t) w, with per-sample coefficients of shape [B]
    (Albergo & Vanden-Eijnden 2023, eq. 1; Tong et al. 2024, eq. 14).  The conditional
    velocity u_t is the same combination with α', β', γ' (Tong et al. 2024, eq. 15)."""
    return (
        expand_like(alpha_t, x0) * x0 + expand_like(beta_t, x1) * x1 + expand_like(gamma_t, w) * w
    )


def squared_error(v: Tensor, u: Tensor) -> Tensor:
    """‖v − u‖² per sample, summed over every axis but the first."""
    d2 = (v - u).pow(2)
    return d2.sum(dim=1) if d2.dim() == 2 else d2.reshape(v.shape[0], -1).sum(dim=1)


def sample_time(
    n: int, *, like: Tensor, eps: float = T_EPS, generator: torch.Generator | None = None
) -> Tensor:
    """t ~ U[eps, 1 − eps], shape [n], on ``like``'s device and dtype."""
    u = draws.rand(n, generator=generator, device=like.device, dtype=like.dtype)
    return eps + (1.0 - 2.0 * eps) * u


class ConditionalPath:
    """A conditional probability path p_t(x | x0, x1) = N(μ_t, σ_t² I) and its velocity.

    Subclasses override the hooks :meth:`mu_t`, :meth:`sigma_t` and :meth:`target`;
    :meth:`sample_xt` combines them.  A path whose σ_t is identically 0 sets
    :attr:`noiseless`: it takes no noise ``w`` (``None``) and none is drawn for it.
    """

    noiseless: bool = False

    def mu_t(self, x0: Tensor, x1: Tensor, t: Tensor) -> Tensor:
        """The mean of x_t given (x0, x1)."""
        raise NotImplementedError

    def sigma_t(self, t: Tensor) -> Tensor:
        """The standard deviation of x_t given (x0, x1), shape [B]."""
        raise NotImplementedError

    def target(self, x0: Tensor, x1: Tensor, t: Tensor, w: Tensor) -> Tensor:
        """u_t = d x_t / dt along fixed (x0, x1, w)."""
        raise NotImplementedError

    def sample_xt(self, x0: Tensor, x1: Tensor, t: Tensor, w: Tensor) -> Tensor:
        """x_t = μ_t + σ_t w."""
        return self.mu_t(x0, x1, t) + expand_like(self.sigma_t(t), w) * w

    def xt_and_target(self, x0: Tensor, x1: Tensor, t: Tensor, w: Tensor) -> tuple[Tensor, Tensor]:
        """(x_t, u_t) together (:meth:`sample_xt`, :meth:`target`; a hook for paths that share
        work between them)."""
        return self.sample_xt(x0, x1, t, w), self.target(x0, x1, t, w)


def _is_zero(c: Coefficient) -> bool:
    return not callable(c) and c == 0


#: One term c(t) x of a combination: (kind, c, index of x) with kind ``fn`` (c(t) x),
#: ``number`` (c x) or ``one`` (x itself).
Term = tuple[str, Coefficient, int]


def _plan(coefficients: tuple[Coefficient, ...]) -> tuple[Term, ...]:
    """The terms of Σ c_i(t) x_i worth computing, decided once: c = 0 is dropped, c = 1 keeps
    x_i as it is, another number multiplies it directly (each exactly as c(t) x_i would)."""
    terms = []
    for i, c in enumerate(coefficients):
        if callable(c):
            terms.append(("fn", c, i))
        elif c == 1:
            terms.append(("one", c, i))
        elif c != 0:
            terms.append(("number", c, i))
    return tuple(terms)


def _combination(plan: tuple[Term, ...], t: Tensor, x0: Tensor, *rest: Tensor | None) -> Tensor:
    """Σ c_i(t) x_i over the terms of ``plan`` (left to right) for a time column ``t`` that
    broadcasts against each of x_0 = ``x0``, x_1, ... = ``rest`` (zeros like x0 for a plan
    without terms)."""
    xs = (x0, *rest)
    total: Tensor | None = None
    for kind, c, i in plan:
        x = xs[i]
        if x is None:
            raise ValueError("this path has a noise term: pass its noise w")
        term = x if kind == "one" else (c(t) if callable(c) else c) * x
        total = term if total is None else total + term
    if total is None:
        return torch.zeros_like(x0)
    return total


class AffinePath(ConditionalPath):
    """x_t = α(t) x0 + β(t) x1 + γ(t) w from the six coefficients (α, β, γ and their
    derivatives), each a function of t (e.g. :func:`gendsl.symbolic.torch_fns` of a path
    kernel) or a number where it does not depend on t.  Functions are evaluated on a column
    t [B, 1, ...] that broadcasts against the data, so they are elementwise in t; a path with
    γ = γ' = 0 is :attr:`~ConditionalPath.noiseless`."""

    def __init__(
        self,
        alpha: Coefficient,
        beta: Coefficient,
        gamma: Coefficient,
        d_alpha: Coefficient,
        d_beta: Coefficient,
        d_gamma: Coefficient,
    ):
        self.alpha, self.beta, self.gamma = alpha, beta, gamma
        self.d_alpha, self.d_beta, self.d_gamma = d_alpha, d_beta, d_gamma
        self.noiseless = _is_zero(gamma) and _is_zero(d_gamma)
        self._mu = _plan((alpha, beta))
        self._xt = _plan((alpha, beta, gamma))
        self._ut = _plan((d_alpha, d_beta, d_gamma))

    def mu_t(self, x0: Tensor, x1: Tensor, t: Tensor) -> Tensor:
        """α(t) x0 + β(t) x1."""
        return _combination(self._mu, expand_like(t, x0), x0, x1)

    def sigma_t(self, t: Tensor) -> Tensor:
        """γ(t)."""
        gamma = self.gamma
        return gamma(t) if callable(gamma) else torch.full_like(t, gamma)

    def sample_xt(self, x0: Tensor, x1: Tensor, t: Tensor, w: Tensor | None) -> Tensor:
        """x_t = α(t) x0 + β(t) x1 + γ(t) w (:func:`interpolant`)."""
        return _combination(self._xt, expand_like(t, x0), x0, x1, w)

    def target(self, x0: Tensor, x1: Tensor, t: Tensor, w: Tensor | None) -> Tensor:
        """u_t = α'(t) x0 + β'(t) x1 + γ'(t) w."""
        return _combination(self._ut, expand_like(t, x0), x0, x1, w)

    def xt_and_target(
        self, x0: Tensor, x1: Tensor, t: Tensor, w: Tensor | None
    ) -> tuple[Tensor, Tensor]:
        """(x_t, u_t) on one time column."""
        column = expand_like(t, x0)
        return _combination(self._xt, column, x0, x1, w), _combination(self._ut, column, x0, x1, w)


def flow_matching_loss(
    v_fn: VelocityFn,
    path: ConditionalPath,
    x0: Tensor,
    x1: Tensor,
    *,
    t: Tensor | None = None,
    w: Tensor | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """‖v(x_t, t) − u_t‖² per pair (Lipman et al. 2023, eq. 23; Tong et al. 2024, eq. 16).

    ``t`` defaults to :func:`sample_time` and ``w`` to standard normal noise (none for a
    :attr:`~ConditionalPath.noiseless` path), both from ``generator``; (x0, x1) are already
    coupled.
    """
    if t is None:
        t = sample_time(x1.shape[0], like=x1, generator=generator)
    if w is None and not path.noiseless:
        w = draws.randn(x1.shape, generator=generator, device=x1.device, dtype=x1.dtype)
    x_t, u_t = path.xt_and_target(x0, x1, t, w)
    return squared_error(v_fn(x_t, t), u_t)


@torch.no_grad()
def straightness(v_fn: VelocityFn, x0: Tensor, *, steps: int = 100) -> Tensor:
    """S = ∫_0^1 E‖(Z_1 − Z_0) − v(Z_t, t)‖² dt along the flow dZ/dt = v from Z_0 = x0, on an
    Euler grid of ``steps`` (Liu, Gong & Liu 2023, eq. 7): 0 for straight trajectories.

    On the grid Z_1 − Z_0 is the mean of the step velocities v_k, so S is the mean over samples
    of (1/steps) Σ_k ‖v_k − mean_k v_k‖².
    """
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    x, dt, vs = x0, 1.0 / steps, []
    for k in range(steps):
        t = torch.full((x.shape[0],), k * dt, device=x.device, dtype=x.dtype)
        v = v_fn(x, t)
        vs.append(v)
        x = x + dt * v
    v_all = torch.stack(vs)
    deviation = v_all - v_all.mean(dim=0)
    return deviation.pow(2).reshape(steps, x0.shape[0], -1).sum(dim=2).mean()
