"""Couplings of a flow-matching model: how a minibatch of source points x0 is paired with a
minibatch of data x1 before the conditional path between them is drawn.

A coupling is an object with one hook, :meth:`Coupling.pair`, which returns index tensors
``(i, j)``: the training pairs are ``(x0[i], x1[j])`` (and any condition of x1 travels with
``j``).  The plans are computed on the squared Euclidean cost C_ij = ‖x0_i − x1_j‖² of the
flattened points with POT (Flamary et al. 2021, "POT: Python Optimal Transport", JMLR): the exact
plan by POT's network simplex in float64 on the CPU, then moved to the batch's device; the
entropic plans by Sinkhorn's iterations in torch on the batch's device (POT's log-domain solver
where the kernel would underflow), and their pairs by inverse-CDF sampling there too.

* ``independent``: π = p0 ⊗ p1, the pairs as drawn (Lipman et al. 2023).
* ``ot(exact)``: the exact minibatch OT plan; with equal batch sizes and uniform weights it is a
  permutation, which is used as it is (Pooladian et al. 2023, "Multisample Flow Matching",
  Sec. 3.2; Tong et al. 2024, "Improving and Generalizing Flow-Based Generative Models with
  Minibatch Optimal Transport", Alg. 3).  From :data:`SPARSE_FROM` points per batch the
  permutation comes from :func:`gendsl.objectives.ot_certified.certified_assignment` (sparse
  network simplex on candidate pairs with a dual optimality certificate, POT's dense solver when
  it does not certify), below from POT's dense solver.
* ``ot(sinkhorn, reg = ε)``: the entropic plan by Sinkhorn's iterations, pairs drawn from it.
* ``schrodinger(sigma = σ)``: the entropic plan with ε = 2σ², the static Schrödinger bridge
  between the minibatches for Brownian motion of variance σ² (Tong et al. 2024, "Simulation-Free
  Schrödinger Bridges via Score and Flow Matching", AISTATS, Sec. 3.2).
* ``reflow``: pairs (x0, Φ(x0)) where Φ is the ODE flow of a previously trained model (Liu,
  Gong & Liu 2023, "Flow Straight and Fast", Alg. 1); it lives in :mod:`gendsl.lower.matching`
  because it needs a compiled model.
"""

from __future__ import annotations

import math

import numpy as np
import ot
import torch
from torch import Tensor

from gendsl.objectives import draws
from gendsl.objectives.eager import eager
from gendsl.objectives.ot_certified import (
    CERTIFY_TOL,
    EMD_MAX_ITER,
    certified_assignment,
    cost_bound,
    squared_cost,
)

__all__ = [
    "CHECK_EVERY",
    "FLOAT32_RATIO",
    "FLOAT32_RATIO_MAX",
    "LOG_DOMAIN_RATIO",
    "SINKHORN_TOL",
    "SPARSE_FROM",
    "SPARSE_FROM_HIGH_DIM",
    "SPARSE_MAX_DIM",
    "Coupling",
    "EntropicOT",
    "ExactOT",
    "Independent",
    "SchrodingerBridge",
    "cost_bound",
    "draw_pairs",
    "draw_rows",
    "entropic_scalings",
    "exact_ot_plan",
    "gibbs_kernel",
    "plan_cost",
    "schrodinger_reg",
    "sinkhorn_plan",
    "sinkhorn_scalings",
    "squared_cost",
]


def gibbs_kernel(x0: Tensor, x1: Tensor, *, reg: float, dtype: torch.dtype) -> Tensor:
    """K_ij = exp(−C_ij / ε) = exp((2 x0_i·x1_j − ‖x0_i‖² − ‖x1_j‖²) / ε) in ``dtype``, by one
    matrix product and one in-place exponential (no cost matrix is formed)."""
    a = x0.detach().reshape(x0.shape[0], -1).to(dtype)
    b = x1.detach().reshape(x1.shape[0], -1).to(dtype)
    k = torch.addmm(b.pow(2).sum(1)[None, :], a, b.T, beta=-1.0 / reg, alpha=2.0 / reg)
    return k.sub_(a.pow(2).sum(1)[:, None] / reg).clamp_max_(0.0).exp_()


def _uniform(n: int) -> np.ndarray:
    return np.full(n, 1.0 / n)


def exact_ot_plan(cost: Tensor) -> Tensor:
    """π* = argmin_{π ∈ Π(a, b)} ⟨π, C⟩ with uniform marginals a = 1/B0, b = 1/B1, by the network
    simplex of ``ot.emd`` (Bonneel et al. 2011) run to optimality (:data:`EMD_MAX_ITER`);
    returned on ``cost``'s device and dtype."""
    c = cost.detach().to("cpu", torch.float64).numpy()
    plan = ot.emd(_uniform(c.shape[0]), _uniform(c.shape[1]), c, numItermax=EMD_MAX_ITER)
    return torch.as_tensor(plan, device=cost.device, dtype=cost.dtype)


#: Above this max C/ε the Gibbs kernel exp(−C/ε) underflows float64 (e^−745 ≈ 5e−324), so
#: Sinkhorn runs in the log domain (about 20x slower).
LOG_DOMAIN_RATIO = 600.0

#: Up to this max C/ε Sinkhorn runs in float32: the kernel's smallest entry e^−70 ≈ 4e−31 stays
#: above float32's smallest normal 1.2e−38, and the first iteration's scalings, at most B·e^70 ≈
#: 1e34 for batches up to 4096 (u ≤ a e^{min_j C_ij/ε}, v ≤ B e^{max C/ε}), below its largest
#: 3.4e38; above it in float64.
FLOAT32_RATIO = 70.0

#: Equal batches whose bound (max ‖x0‖ + max ‖x1‖)²/ε exceeds :data:`FLOAT32_RATIO` still run in
#: float32 when the float32 kernel's smallest entry shows the actual max C/ε ≤ this (e^−78 ≈
#: 1.3e−34, a normal; B·e^78 ≈ 3e37 below 3.4e38 up to 4096 points): the bound overestimates
#: (81.8 against 76.2 on moons at 1024 points with ε = 0.5, 72.6 against 62.3 at 2048:
#: ``benchmarks/ot_couplings.py --sinkhorn 1024,2048``), and float32 halves the memory each of
#: Sinkhorn's matrix-vector products reads.  Scalings that overflow all the same send the batch
#: to float64 (:func:`entropic_scalings`).
FLOAT32_RATIO_MAX = 78.0

#: Sinkhorn stops when the ℓ2 norm of the column-marginal violation ‖πᵀ1 − b‖₂ is below this
#: (checked every :data:`CHECK_EVERY` iterations; the rows are exact), POT's ``stopThr``; the
#: plan is then within about 1e−4 in ℓ1 of POT's float64 plan at its default 1e−9 at batch 512
#: (tests/objectives/test_couplings.py).
SINKHORN_TOL = 1e-5

#: Iterations between two checks of the marginal violation (each one a host read on a GPU).
CHECK_EVERY = 5


def sinkhorn_scalings(
    kernel: Tensor, *, tol: float = SINKHORN_TOL, max_iter: int = 1000
) -> tuple[Tensor, Tensor]:
    """Scalings (u, v) with diag(u) K diag(v) ∈ Π(a, b) for uniform a, b: the Sinkhorn–Knopp
    iterations u ← a / Kv, v ← b / Kᵀu (Cuturi 2013, "Sinkhorn Distances", Alg. 1), stopped
    when ‖v ⊙ Kᵀu − b‖₂ < ``tol`` (the column marginal; the rows are exact)."""
    n, m = kernel.shape
    v = torch.ones(m, device=kernel.device, dtype=kernel.dtype)
    for it in range(max_iter):
        u = (1.0 / n) / (kernel @ v)
        ktu = kernel.T @ u
        if it % CHECK_EVERY == 0:
            error = float((v * ktu - 1.0 / m).norm())
            if error < tol or not math.isfinite(error):  # converged, or overflowed: stop
                break
        v = (1.0 / m) / ktu
    return u, v


def entropic_scalings(
    x0: Tensor, x1: Tensor, *, reg: float, ratio: float | None = None
) -> tuple[Tensor, Tensor, Tensor]:
    """The Gibbs kernel of equal batches and its Sinkhorn scalings (K, u, v), in float32 when
    max C/ε ≤ :data:`FLOAT32_RATIO` by the O(B) bound :func:`cost_bound` (``ratio``, when the
    caller has it) or ≤ :data:`FLOAT32_RATIO_MAX` by the float32 kernel's smallest entry, and
    the scalings stay finite; else in float64 (for max C/ε up to :data:`LOG_DOMAIN_RATIO`)."""
    ratio = cost_bound(x0, x1) / reg if ratio is None else ratio
    # the bound may overestimate: look at the kernel; within this range ‖x‖²/ε ≤ 88, so the
    # float32 exponent (2 x0·x1 − ‖x0‖² − ‖x1‖²)/ε is within about 1e−5 of the exact one
    if ratio <= FLOAT32_RATIO_MAX + 10:
        kernel = gibbs_kernel(x0, x1, reg=reg, dtype=torch.float32)
        if ratio <= FLOAT32_RATIO or float(kernel.min()) >= math.exp(-FLOAT32_RATIO_MAX):
            u, v = sinkhorn_scalings(kernel)
            if bool(torch.isfinite(u).all() & torch.isfinite(v).all()):
                return kernel, u, v
    kernel = gibbs_kernel(x0, x1, reg=reg, dtype=torch.float64)
    return (kernel, *sinkhorn_scalings(kernel))


def sinkhorn_plan(cost: Tensor, *, reg: float, tol: float = SINKHORN_TOL) -> Tensor:
    """π_ε = argmin_{π ∈ Π(a, b)} ⟨π, C⟩ − ε H(π) with uniform marginals: diag(u) K diag(v)
    with the Gibbs kernel K = exp(−C/ε) and :func:`sinkhorn_scalings`, on ``cost``'s device, in
    float32 while max C/ε ≤ :data:`FLOAT32_RATIO` and in float64 above; when C/ε is too large
    for exp(−C/ε) in float64, POT's log-domain Sinkhorn on its torch backend (Peyré & Cuturi
    2019, "Computational Optimal Transport", Sec. 4.4).  Stops when ‖πᵀ1 − b‖₂ < ``tol``."""
    if reg <= 0:
        raise ValueError(f"reg must be > 0, got {reg}")
    ratio = float(cost.max()) / reg
    dtype = torch.float32 if ratio <= FLOAT32_RATIO else torch.float64
    if ratio > LOG_DOMAIN_RATIO:
        c = cost.detach().to(dtype)
        a = torch.full((c.shape[0],), 1.0 / c.shape[0], device=c.device, dtype=dtype)
        b = torch.full((c.shape[1],), 1.0 / c.shape[1], device=c.device, dtype=dtype)
        plan = ot.sinkhorn(a, b, c, reg, method="sinkhorn_log", stopThr=tol, warn=False)
        return plan.to(cost.dtype)
    kernel = cost.detach().to(dtype).mul(-1.0 / reg).exp_()
    u, v = sinkhorn_scalings(kernel, tol=tol)
    return kernel.mul_(u[:, None]).mul_(v[None, :]).to(cost.dtype)


def schrodinger_reg(sigma: float) -> float:
    """ε = 2σ²: the entropic regularisation whose OT plan is the static Schrödinger bridge of
    Brownian motion with variance σ² per unit time (Tong et al. 2024, AISTATS, Prop. 3.1)."""
    if sigma <= 0:
        raise ValueError(f"sigma must be > 0, got {sigma}")
    return 2.0 * sigma**2


def plan_cost(plan: Tensor, cost: Tensor) -> Tensor:
    """⟨π, C⟩ = Σ_ij π_ij C_ij."""
    return (plan * cost).sum()


def draw_pairs(
    plan: Tensor, n: int, *, generator: torch.Generator | None = None
) -> tuple[Tensor, Tensor]:
    """``n`` index pairs (i, j) ~ π drawn with replacement from the (normalised) plan
    (Tong et al. 2024, TMLR, Alg. 3, "(x0, x1) ~ π"), by inverse-CDF sampling: k is the first
    flat index whose float64 cumulative mass exceeds u ~ U[0, Σπ), so an entry of zero mass is
    never drawn."""
    cdf = plan.detach().reshape(-1).clamp_min(0).to(torch.float64).cumsum(0)
    u = draws.rand(n, generator=generator, device=plan.device, dtype=torch.float64) * cdf[-1]
    k = torch.searchsorted(cdf, u, right=True).clamp_max(cdf.shape[0] - 1)
    return k // plan.shape[1], k % plan.shape[1]


def draw_rows(plan: Tensor, *, generator: torch.Generator | None = None) -> Tensor:
    """One column j_i ~ π(· | i) = π_i· / Σ_j π_ij for every row i, by inverse-CDF sampling on
    the row's cumulative mass: with a uniform row marginal, the pairs (i, j_i) are each
    distributed as π, and every x0 is used once."""
    cdf = plan.detach().clamp_min(0).cumsum(1)
    u = draws.rand(plan.shape[0], 1, generator=generator, device=plan.device, dtype=cdf.dtype)
    j = torch.searchsorted(cdf, u * cdf[:, -1:], right=True)
    return j.squeeze(1).clamp_max(plan.shape[1] - 1)


class Coupling:
    """Pairs x0 with x1: subclasses override :meth:`pair` and :meth:`describe`."""

    name = ""

    def pair(
        self, x0: Tensor, x1: Tensor, *, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Tensor]:
        """Index tensors (i, j): the pairs are (x0[i], x1[j])."""
        raise NotImplementedError

    def describe(self) -> str:
        """One line for ``gendsl compile``."""
        raise NotImplementedError


class Independent(Coupling):
    """π = p0 ⊗ p1: the pairs as drawn."""

    name = "independent"

    def pair(
        self, x0: Tensor, x1: Tensor, *, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Tensor]:
        idx = torch.arange(x1.shape[0], device=x1.device)
        return idx, idx

    def describe(self) -> str:
        return "independent: (x0, x1) ~ p0 x p1"


#: Equal batches of at least this many points are paired by the certified sparse solver, smaller
#: ones by POT's dense network simplex.  ``benchmarks/ot_couplings.py --crossover`` (one CPU
#: thread, N(0, I) against each set, median of 4 batches, the certified solver's time over
#: POT's): moons, 8gaussians and 25gaussians 1.09-1.57 at 256 points, 0.91-1.26 at 384,
#: 0.60-0.92 at 512, 0.43-0.55 at 2048; the 64-pixel digits 1.12 at 256, 0.48 at 512.
SPARSE_FROM = 512

#: :data:`SPARSE_FROM` holds for points of at most this many coordinates; points with more go to
#: the certified solver from :data:`SPARSE_FROM_HIGH_DIM` points.  In high dimension it needs
#: more rounds: on 784-pixel fontdigits 5-7.5, and 1.43x POT's time at 512 points, 1.00 at 768,
#: 0.78 at 1024, 0.59 at 2048 (same command).
SPARSE_MAX_DIM = 64

#: See :data:`SPARSE_MAX_DIM`.
SPARSE_FROM_HIGH_DIM = 2048


class ExactOT(Coupling):
    """The exact minibatch OT plan; a permutation for equal batches (module docstring).

    Equal batches of at least :data:`SPARSE_FROM` points with at most :data:`SPARSE_MAX_DIM`
    coordinates, or of at least :data:`SPARSE_FROM_HIGH_DIM` points with more, are paired by
    the certified solver, the others by POT's dense one.
    With ``gap`` > 0 (``ot(exact, gap = 0.01)``) equal batches of every size are paired by the
    certified solver, which stops at the first pairing whose certified gap is at most ``gap``
    times its cost: cost ≤ OPT / (1 − gap), ε-close with ε reported instead of exact.
    ``last_gap`` is the certified gap cost − LB ≥ cost − OPT (mean cost units) of the last
    batch paired by the certified solver, ``last_relative_gap`` that gap over the cost (None
    before one; 0 for a batch POT's dense solver paired, exact up to rounding)."""

    name = "ot(exact)"

    def __init__(self, *, sparse_from: int = SPARSE_FROM, gap: float = 0.0):
        if not 0 <= gap < 1:
            raise ValueError(f"gap must be in [0, 1), got {gap}")
        self.sparse_from = sparse_from
        self.gap = float(gap)
        self.last_gap: float | None = None
        self.last_relative_gap: float | None = None

    @eager  # a host-side solver whose gap floats would recompile a traced frame every step
    def pair(
        self, x0: Tensor, x1: Tensor, *, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Tensor]:
        idx = torch.arange(x0.shape[0], device=x0.device)
        equal = x0.shape[0] == x1.shape[0]
        low = x0[0].numel() <= SPARSE_MAX_DIM
        start = self.sparse_from if low else max(self.sparse_from, SPARSE_FROM_HIGH_DIM)
        sparse = x0.shape[0] >= start
        if equal and (self.gap > 0 or sparse):
            result = certified_assignment(x0, x1, tol=max(self.gap, CERTIFY_TOL))
            self.last_gap = result.gap
            self.last_relative_gap = result.gap / max(abs(result.cost), 1e-300)
            return idx, result.cols
        plan = exact_ot_plan(squared_cost(x0, x1))
        self.last_relative_gap = 0.0
        if equal:
            return idx, plan.argmax(dim=1)
        return draw_pairs(plan, x1.shape[0], generator=generator)

    def describe(self) -> str:
        within = f", certified within {self.gap:g} of the optimal cost" if self.gap else ""
        return (
            f"ot(exact{f', gap = {self.gap:g}' if self.gap else ''}): minibatch optimal "
            f"transport, cost |x0 - x1|^2{within} (Tong et al. 2024)"
        )


class EntropicOT(Coupling):
    """Pairs drawn from the Sinkhorn plan with regularisation ``reg``: for equal batches each
    x0_i with one x1_j, j ~ π(· | i) (:func:`draw_rows`), else pairs ~ π (:func:`draw_pairs`)."""

    name = "ot(sinkhorn)"

    def __init__(self, reg: float):
        if reg <= 0:
            raise ValueError(f"reg must be > 0, got {reg}")
        self.reg = float(reg)

    @eager  # Sinkhorn's stopping test reads the marginal error back: data-dependent iterations
    def pair(
        self, x0: Tensor, x1: Tensor, *, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Tensor]:
        ratio = cost_bound(x0, x1) / self.reg
        if x0.shape[0] != x1.shape[0] or ratio > LOG_DOMAIN_RATIO:
            plan = sinkhorn_plan(squared_cost(x0, x1), reg=self.reg)
            if x0.shape[0] != x1.shape[0]:
                return draw_pairs(plan, x1.shape[0], generator=generator)
        else:  # π(j | i) ∝ K_ij v_j: the row scaling u_i cancels, the plan is never formed
            kernel, _, v = entropic_scalings(x0, x1, reg=self.reg, ratio=ratio)
            plan = kernel.mul_(v[None, :])
        idx = torch.arange(x0.shape[0], device=x0.device)
        return idx, draw_rows(plan, generator=generator)

    def describe(self) -> str:
        return f"ot(sinkhorn, reg = {self.reg:g}): entropic minibatch OT (Cuturi 2013)"


class SchrodingerBridge(EntropicOT):
    """The entropic plan with ε = 2σ² (:func:`schrodinger_reg`)."""

    name = "schrodinger"

    def __init__(self, sigma: float):
        super().__init__(schrodinger_reg(sigma))
        self.sigma = float(sigma)

    def describe(self) -> str:
        return (
            f"schrodinger(sigma = {self.sigma:g}): entropic OT with reg = 2 sigma^2 = "
            f"{self.reg:g} (Tong et al. 2024)"
        )
