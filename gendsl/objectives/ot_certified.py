"""Exact minibatch OT assignments with an optimality certificate, for batches where POT's dense
network simplex (O(B²) arcs, seconds at B = 2048) is the bottleneck.

The assignment problem min_σ (1/B) Σ_i C_iσ(i), C_ij = ‖x0_i − x1_j‖², is solved in four steps:

1. Approximate Kantorovich potentials (f, g) by ε-scaling Sinkhorn in float32 on the batch's
   device, with the potentials absorbed into the kernel at every ε so that it stays bounded
   (Schmitzer 2019, "Stabilized Sparse Scaling Algorithms for Entropy Regularized Transport
   Problems", SIAM J. Sci. Comput., Sec. 3.1–3.2; ε-scaling: Kosowsky & Yuille 1994).
2. A sparse candidate graph: for every x0_i the k columns of smallest reduced cost
   C_ij − f_i − g_j, and for every x1_j the k rows of smallest reduced cost.
3. The exact min-cost flow on that graph by POT's sparse network simplex, warm-started from the
   potentials (``ot.lp.emd_wrap.emd_c_sparse``; Bonneel et al. 2011, Flamary et al. 2021).
4. A certificate from weak duality: for any g, the c-transform f^c_i = min_j (C_ij − g_j) over
   *all* B² pairs makes (f^c, g) feasible, so LB = mean(f^c) + mean(g) ≤ OPT (Peyré & Cuturi
   2019, "Computational Optimal Transport", Sec. 3.1 and Prop. 3.1/3.3).  With the solver's
   column potentials g, gap = cost − LB ≥ cost − OPT is the certified sub-optimality.  While it
   exceeds the tolerance, the pairs of negative reduced cost C_ij − f_i − g_j < 0 (the ones
   that could improve the plan) join the graph and step 3 runs again (Schmitzer 2016, "A Sparse
   Multiscale Algorithm for Dense Optimal Transport", J. Math. Imaging Vis., Sec. 3.3).  Each
   round first screens the float32 cost for pairs whose reduced cost is negative beyond float32
   rounding (:func:`_screen`); only a round without any builds the float64 cost and certifies.
   The screen's c-transform also gives a float32 bound, lowered by a bound on the rounding
   error so that it stays ≤ OPT: a loose tolerance (``tol`` = 1e-2, ``ot(exact, gap = 0.01)``)
   is usually met by it in the first round, before any float64 pass over the B² pairs.
   After ``max_rounds`` rounds POT's dense solver decides; a graph without a perfect matching
   gets one (:func:`_sorted_matching`).

The returned pairing is therefore optimal up to the reported gap (≤ ``tol`` × cost; 1e-9 by
default, i.e. exact up to rounding; the caller may ask for less), whichever branch produced it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import ot
import torch
from ot.lp.emd_wrap import emd_c_sparse
from torch import Tensor

__all__ = [
    "ARC_CHUNK",
    "CANDIDATES",
    "CERTIFY_TOL",
    "EMD_MAX_ITER",
    "MAX_ROUNDS",
    "CertifiedAssignment",
    "annealed_potentials",
    "arc_costs",
    "candidate_edges",
    "certified_assignment",
    "cost_bound",
    "dual_bound",
    "sparse_network_simplex",
    "squared_cost",
]

#: Relative certified gap (cost − LB) / cost below which an assignment is accepted.
CERTIFY_TOL = 1e-9

#: Candidate columns per row and rows per column of the sparse graph (step 2).
CANDIDATES = 8

#: Arcs whose costs are computed at once (float64 differences of gathered points).
ARC_CHUNK = 4096

#: Rounds of step 3–4 before POT's dense solver decides.
MAX_ROUNDS = 8

#: Iteration cap of POT's network simplex: its default, 100 000, stops the dense solver before
#: optimality (with a warning) at 4096 points on the 2-D sets.
EMD_MAX_ITER = 10**9

#: POT's network-simplex status for an optimal solution (``ot.lp.check_result``).
_OPTIMAL = 1

#: The kernel's exponent is kept in [−80, 60]: e^−80 ≈ 1.8e−35 stays a float32 normal (no slow
#: denormals, no zero row sums) and e^60 B stays below float32's largest 3.4e38.
_EXP_MIN, _EXP_MAX = -80.0, 60.0


def squared_cost(x0: Tensor, x1: Tensor) -> Tensor:
    """C_ij = ‖x0_i − x1_j‖² = ‖x0_i‖² + ‖x1_j‖² − 2 x0_i·x1_j for the flattened points, by one
    matrix product (clamped at 0 against rounding): [B0, B1]."""
    a, b = x0.reshape(x0.shape[0], -1), x1.reshape(x1.shape[0], -1)
    cost = torch.addmm(b.pow(2).sum(1)[None, :], a, b.T, alpha=-2.0)
    return cost.add_(a.pow(2).sum(1)[:, None]).clamp_min_(0.0)


def cost_bound(x0: Tensor, x1: Tensor) -> float:
    """(max_i ‖x0_i‖ + max_j ‖x1_j‖)² ≥ max_ij C_ij (triangle inequality), in O(B0 + B1)."""
    a, b = x0.reshape(x0.shape[0], -1), x1.reshape(x1.shape[0], -1)
    return float(a.norm(dim=1).max() + b.norm(dim=1).max()) ** 2


@dataclass(frozen=True)
class CertifiedAssignment:
    """σ as ``cols`` (x0_i is paired with x1_cols[i]), its mean cost, the dual lower bound
    LB ≤ OPT, the rounds of step 3–4 and whether POT's dense solver was used."""

    cols: Tensor
    cost: float
    bound: float
    rounds: int
    dense: bool

    @property
    def gap(self) -> float:
        """cost − LB ≥ cost − OPT: how far the pairing can be from optimal (mean cost units)."""
        return self.cost - self.bound


def annealed_potentials(
    cost: Tensor,
    cost_t: Tensor,
    *,
    eps_start: float,
    eps_end: float,
    factor: float = 2.0,
    iters: int = 3,
    work: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """Potentials (f, g) of the entropic problem at ε = ``eps_end``, reached from
    ``eps_start`` by dividing ε by ``factor``; at each ε, ``iters`` Sinkhorn iterations
    u ← a / K̃v, v ← b / K̃ᵀu on the stabilised kernel K̃_ij = exp((f_i + g_j − C_ij)/ε), then
    f ← f + ε log u, g ← g + ε log v (Schmitzer 2019, Alg. 2).  Starts from the c-transforms
    f_i = min_j C_ij, g_j = min_i (C_ij − f_i); ``cost_t`` is Cᵀ, contiguous (column
    reductions of a row-major matrix are slow on CPUs).  Every ε's kernel is written in place
    into one buffer (``work``, shaped like C, or a new one) instead of new B² tensors, each an
    allocation and a slower out-of-place broadcast."""
    n, m = cost.shape
    f = cost.min(1).values
    g = (cost_t - f[None, :]).min(1).values
    eps = eps_start
    kernel = torch.empty_like(cost) if work is None else work
    while True:
        torch.add(f[:, None], g[None, :], out=kernel)
        kernel.sub_(cost).mul_(1.0 / eps).clamp_(_EXP_MIN, _EXP_MAX).exp_()
        v = torch.ones(m, device=cost.device, dtype=cost.dtype)
        for _ in range(iters):
            u = (1.0 / n) / (kernel @ v)
            v = (1.0 / m) / (kernel.T @ u)
        f = f + eps * u.log()
        g = g + eps * v.log()
        if eps <= eps_end:
            return f, g
        eps = max(eps / factor, eps_end)


def candidate_edges(
    cost: Tensor, cost_t: Tensor, f: Tensor, g: Tensor, *, k: int, work: Tensor | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(rows, cols) of the k smallest reduced costs C_ij − f_i − g_j of every row and of every
    column (``cost_t`` = Cᵀ), as int64 numpy arrays (duplicates included); ``work``: a buffer
    shaped like C for the reduced costs (square batches)."""
    n, m = cost.shape
    k_row, k_col = min(k, m), min(k, n)
    by_row = _minus_row(cost, g, work).topk(k_row, dim=1, largest=False).indices
    by_col = _minus_row(cost_t, f, work).topk(k_col, dim=1, largest=False).indices
    rows = torch.cat(
        [torch.arange(n, device=cost.device).repeat_interleave(k_row), by_col.reshape(-1)]
    )
    cols = torch.cat(
        [by_row.reshape(-1), torch.arange(m, device=cost.device).repeat_interleave(k_col)]
    )
    return rows.cpu().numpy(), cols.cpu().numpy()


def _minus_row(matrix: Tensor, vector: Tensor, work: Tensor | None) -> Tensor:
    """matrix − vector[None, :], into ``work`` when it has the shape (no new B² tensor)."""
    if work is None or work.shape != matrix.shape:
        return matrix - vector[None, :]
    return torch.sub(matrix, vector[None, :], out=work)


def arc_costs(
    points: tuple[np.ndarray, np.ndarray], rows: np.ndarray, cols: np.ndarray
) -> np.ndarray:
    """‖x0_r − x1_c‖² in float64 for each arc (r, c), from the differences (no cancellation),
    in chunks of :data:`ARC_CHUNK` arcs so that high-dimensional points gather little at once."""
    x, y = points
    out = np.empty(rows.shape[0])
    for start in range(0, rows.shape[0], ARC_CHUNK):
        r, c = rows[start : start + ARC_CHUNK], cols[start : start + ARC_CHUNK]
        out[start : start + ARC_CHUNK] = ((x[r] - y[c]) ** 2).sum(1)
    return out


class _Arcs:
    """The candidate graph of :func:`certified_assignment`'s rounds: unique arcs in sorted order
    (row-major keys r·m + c) and their costs, each computed once — a round adds a few arcs, and
    in high dimension an arc's cost is the expensive part."""

    def __init__(self, points: tuple[np.ndarray, np.ndarray]):
        self.points, self.m = points, points[1].shape[0]
        self.keys = np.empty(0, dtype=np.int64)
        self.costs = np.empty(0)

    def add(self, rows: np.ndarray, cols: np.ndarray) -> None:
        new = np.setdiff1d(np.unique(rows * self.m + cols), self.keys, assume_unique=True)
        if new.size:
            keys = np.concatenate([self.keys, new])
            added = arc_costs(self.points, new // self.m, new % self.m)
            costs = np.concatenate([self.costs, added])
            order = np.argsort(keys, kind="stable")
            self.keys, self.costs = keys[order], costs[order]

    def solve(self, potentials: tuple[np.ndarray, np.ndarray] | None):
        """:func:`sparse_network_simplex` on these arcs."""
        return sparse_network_simplex(
            self.points, self.keys // self.m, self.keys % self.m,
            potentials=potentials, costs=self.costs,
        )  # fmt: skip


def sparse_network_simplex(
    points: tuple[np.ndarray, np.ndarray],
    rows: np.ndarray,
    cols: np.ndarray,
    *,
    potentials: tuple[np.ndarray, np.ndarray] | None = None,
    costs: np.ndarray | None = None,
) -> tuple[np.ndarray, float, np.ndarray, np.ndarray, int]:
    """The uniform-marginal OT problem between the float64 ``points`` (x0, x1) restricted to the
    arcs (rows, cols), costs ‖x0_i − x1_j‖² in float64 (``costs``: given for unique arcs in
    row-major order), by POT's sparse network simplex, warm-started from ``potentials``:
    (σ, mean cost, α, β, status); σ[i] = -1 where row i carries no flow (status ≠ optimal)."""
    x, y = points
    n, m = x.shape[0], y.shape[0]
    if costs is None:
        key = np.unique(rows * m + cols)
        rows, cols = key // m, key % m
        costs = arc_costs(points, rows, cols)
    a, b = np.full(n, 1.0 / n), np.full(m, 1.0 / m)
    alpha, beta = potentials if potentials is not None else (None, None)
    src, dst, flow, total, alpha, beta, status = emd_c_sparse(
        a, b, rows.astype(np.uint64), cols.astype(np.uint64), costs, EMD_MAX_ITER, alpha, beta
    )
    sigma = np.full(n, -1, dtype=np.int64)
    keep = flow > 0.5 / n
    sigma[src[keep].astype(np.int64)] = dst[keep].astype(np.int64)
    return sigma, float(total), alpha, beta, int(status)


def dual_bound(cost: Tensor, g: Tensor) -> tuple[Tensor, float]:
    """f^c_i = min_j (C_ij − g_j) and the weak-duality bound mean(f^c) + mean(g) ≤ OPT for
    uniform marginals (any g; Peyré & Cuturi 2019, Prop. 3.1 with the c-transform)."""
    f = (cost - g[None, :]).min(1).values
    return f, float(f.mean()) + float(g.mean())


def _violations(
    cost: Tensor, f_c: Tensor, alpha: Tensor, beta: Tensor, *, k: int, slack: float
) -> tuple[np.ndarray, np.ndarray]:
    """Pairs of negative reduced cost C_ij − α_i − β_j < −slack: for every row that has one,
    its k most negative."""
    bad = (f_c < alpha - slack).nonzero().squeeze(1)
    reduced = cost[bad] - beta[None, :] - alpha[bad, None]
    kk = min(k, cost.shape[1])
    vals, cols = reduced.topk(kk, dim=1, largest=False)
    rows = bad[:, None].expand(-1, kk)
    neg = vals < -slack
    return rows[neg].cpu().numpy(), cols[neg].cpu().numpy()


def _screen(
    cost32: Tensor,
    alpha: np.ndarray,
    beta: np.ndarray,
    a: Tensor,
    *,
    reach: float,
    k: int,
    work: Tensor | None = None,
) -> tuple[tuple[np.ndarray, np.ndarray], float]:
    """:func:`_violations` on the float32 cost, counting only reduced costs below −δ, with
    δ = 2 (d + 4) u (``reach`` + max |α| + max |β|), ``reach`` = (max ‖a‖ + max ‖b‖)²
    (:func:`cost_bound`), u float32's unit roundoff and d the points' dimension: what float32
    rounding cannot have produced (the expansion ‖a‖² + ‖b‖² − 2 a·b sums length-d products,
    error ≤ γ_{d+2} times the sum of the terms' magnitudes, Higham 2002, Lemma 3.1 and
    Sec. 3.1; rounding the float64 points, β and the subtraction add ≤ 4u of the magnitudes).
    An empty answer sends the round to the float64 certificate.  Also the weak-duality bound
    of :func:`dual_bound` from the same float32 c-transform, lowered by δ: every float32
    C_ij − β_j is within δ of its exact value, so the bound stays below the exact one (below
    OPT).  That holds for IEEE float32 products; with TF32 or bf16 matrix products allowed
    (``torch.set_float32_matmul_precision`` other than "highest") the bound is −∞ and only the
    float64 certificate can accept."""
    u = torch.finfo(torch.float32).eps / 2
    dim = a.shape[1]
    slack = 2 * (dim + 4) * u * (reach + float(np.abs(alpha).max()) + float(np.abs(beta).max()))
    alpha32 = torch.as_tensor(alpha, device=cost32.device, dtype=torch.float32)
    beta32 = torch.as_tensor(beta, device=cost32.device, dtype=torch.float32)
    f_c = _minus_row(cost32, beta32, work).min(1).values
    bound = float(f_c.double().mean()) + float(np.mean(beta)) - slack
    if torch.get_float32_matmul_precision() != "highest":
        bound = -math.inf
    return _violations(cost32, f_c, alpha32, beta32, k=k, slack=slack), bound


def _sorted_matching(x0: Tensor, x1: Tensor) -> tuple[np.ndarray, np.ndarray]:
    """A perfect matching (the i-th smallest first coordinate of x0 with that of x1), so that
    the candidate graph always has a feasible assignment."""
    a, b = x0.reshape(x0.shape[0], -1)[:, 0], x1.reshape(x1.shape[0], -1)[:, 0]
    return a.argsort().cpu().numpy(), b.argsort().cpu().numpy()


def certified_assignment(
    x0: Tensor,
    x1: Tensor,
    *,
    tol: float = CERTIFY_TOL,
    k: int = CANDIDATES,
    max_rounds: int = MAX_ROUNDS,
) -> CertifiedAssignment:
    """The optimal assignment of equal batches x0, x1 under C_ij = ‖x0_i − x1_j‖² with its
    certified gap (module docstring); POT's dense ``ot.emd`` decides when the sparse rounds do
    not certify it within ``tol`` × cost."""
    if x0.shape[0] != x1.shape[0]:
        raise ValueError(f"an assignment needs equal batches, got {x0.shape[0]} and {x1.shape[0]}")
    a = x0.detach().reshape(x0.shape[0], -1).double()
    b = x1.detach().reshape(x1.shape[0], -1).double()
    cost32, cost32_t = squared_cost(a.float(), b.float()), squared_cost(b.float(), a.float())
    # the gap accepted: tol of the cost, and never below float64 rounding of the largest cost
    # (an optimum of cost 0, identical batches, is certified by a bound of −1e-17, not by 0)
    reach = cost_bound(a, b)
    floor = 64 * float(np.finfo(np.float64).eps) * reach
    scale = max(float(cost32.mean()), 1e-30)
    work = torch.empty_like(cost32)  # one B² buffer for the kernels, reduced costs and screens
    f, g = annealed_potentials(
        cost32, cost32_t, eps_start=scale / 4, eps_end=scale / 100, work=work
    )
    rows, cols = candidate_edges(cost32, cost32_t, f, g, k=k, work=work)
    points = (a.cpu().numpy(), b.cpu().numpy())
    potentials = (f.double().cpu().numpy(), g.double().cpu().numpy())
    arcs = _Arcs(points)
    arcs.add(rows, cols)
    cost = None
    for rounds in range(1, max_rounds + 1):
        sigma, total, alpha, beta, status = arcs.solve(potentials)
        if status != _OPTIMAL:
            arcs.add(*_sorted_matching(a, b))
            potentials = None
            continue
        shift = float(np.median(beta))
        alpha, beta = alpha + shift, beta - shift
        potentials = (alpha, beta)
        extra, bound = _screen(cost32, alpha, beta, a, reach=reach, k=k, work=work)
        if total - bound <= max(tol * abs(total), floor):  # a loose tol, met by the float32 bound
            cols_t = torch.as_tensor(sigma, device=x0.device)
            return CertifiedAssignment(cols_t, total, bound, rounds, dense=False)
        if extra[0].size == 0:
            cost = squared_cost(a, b) if cost is None else cost
            beta_t, alpha_t = (
                torch.as_tensor(beta, device=a.device),
                torch.as_tensor(alpha, device=a.device),
            )
            f_c, bound = dual_bound(cost, beta_t)
            if total - bound <= max(tol * abs(total), floor):
                cols_t = torch.as_tensor(sigma, device=x0.device)
                return CertifiedAssignment(cols_t, total, bound, rounds, dense=False)
            slack = max(tol * abs(total), floor)
            extra = _violations(cost, f_c, alpha_t, beta_t, k=k, slack=slack)
        arcs.add(*extra)
    return _dense(points, x0.device, max_rounds)


def _dense(
    points: tuple[np.ndarray, np.ndarray], device: torch.device, rounds: int
) -> CertifiedAssignment:
    """POT's dense network simplex: the exact plan and its dual, for the certificate."""
    cost = ot.dist(*points)
    n = cost.shape[0]
    uniform = np.full(n, 1.0 / n)
    plan, log = ot.emd(uniform, uniform, cost, numItermax=EMD_MAX_ITER, log=True)
    cols = torch.as_tensor(plan.argmax(1), device=device)
    total = float(cost[np.arange(n), plan.argmax(1)].mean())
    bound = float(log["u"].mean() + log["v"].mean())
    return CertifiedAssignment(cols, total, min(bound, total), rounds, dense=True)
