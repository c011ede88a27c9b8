"""The couplings at training batch size on the 2-D sets, against independent solvers: the exact
pairing against scipy's shortest-augmenting-path assignment, the entropic plan on the device
against POT's float64 Sinkhorn on numpy, and the drawn pairs' mean cost against the plan's; the
certified sparse assignment against scipy's optimum and its certificate against weak duality."""

from __future__ import annotations

import math

import numpy as np
import ot
import pytest
import torch
from scipy.optimize import linear_sum_assignment

from gendsl.data import load_dataset
from gendsl.objectives.couplings import (
    FLOAT32_RATIO,
    ExactOT,
    SchrodingerBridge,
    cost_bound,
    draw_pairs,
    entropic_scalings,
    gibbs_kernel,
    plan_cost,
    sinkhorn_plan,
    sinkhorn_scalings,
    squared_cost,
)
from gendsl.objectives.ot_certified import (
    _screen,
    annealed_potentials,
    certified_assignment,
    dual_bound,
)

torch.set_num_threads(1)

N = 512


def batch(name: str, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """x0 ~ N(0, I) and N points of a 2-D set."""
    x1 = load_dataset(name, split="train", seed=seed, n=N).x.float()
    return torch.randn(N, 2, generator=torch.Generator().manual_seed(seed)), x1


@pytest.mark.parametrize("name", ["moons", "8gaussians"])
def test_exact_pairing_at_batch_512_has_the_optimal_cost(name):
    x0, x1 = batch(name, 0)
    i, j = ExactOT().pair(x0, x1)
    assert sorted(j.tolist()) == list(range(N))
    cost = squared_cost(x0, x1).double().numpy()
    rows, cols = linear_sum_assignment(cost)
    optimal = cost[rows, cols].mean()
    assert cost[i.numpy(), j.numpy()].mean() == pytest.approx(optimal, rel=1e-9)


@pytest.mark.parametrize("name", ["moons", "8gaussians"])
def test_entropic_plan_at_batch_512_matches_pots_float64_plan(name):
    """The device plan (float32, stopped at SINKHORN_TOL) against POT's numpy float64 Sinkhorn
    run to 1e-9: each row of the plan is off by at most the stopping tolerance and the float32
    rounding, so the l1 distance (mass 1) and the costs agree to about 1e-3."""
    x0, x1 = batch(name, 1)
    cost = squared_cost(x0, x1)
    reg = SchrodingerBridge(0.5).reg
    plan = sinkhorn_plan(cost, reg=reg).double()
    c = cost.double().numpy()
    ref = torch.as_tensor(ot.sinkhorn(np.full(N, 1 / N), np.full(N, 1 / N), c, reg))
    assert float((plan - ref).abs().sum()) < 1e-3
    assert float(plan_cost(plan, cost.double())) == pytest.approx(
        float(plan_cost(ref, cost.double())), rel=1e-3
    )


@pytest.mark.parametrize("name", ["moons", "8gaussians"])
def test_schrodinger_pairs_have_the_mean_cost_of_pots_plan(name):
    """Each drawn pair (i, j_i) is distributed as π, so the mean cost of 50 N of them (50 draws
    of the batch's pairing) is within 5 standard errors of ⟨π, C⟩ for POT's float64 plan (the
    draws are independent given the batch; their variance is at most Var_π C, as stratifying
    over the rows can only lower it)."""
    x0, x1 = batch(name, 2)
    cost = squared_cost(x0, x1).double()
    bridge = SchrodingerBridge(0.5)
    a = np.full(N, 1 / N)
    plan = torch.as_tensor(ot.sinkhorn(a, a, cost.numpy(), bridge.reg))
    mean = float(plan_cost(plan, cost))
    sd = float((plan * (cost - mean) ** 2).sum().sqrt())
    g = torch.Generator().manual_seed(3)
    draws = [bridge.pair(x0, x1, generator=g) for _ in range(50)]
    pair_cost = torch.stack([cost[i, j].mean() for i, j in draws]).mean()
    assert abs(float(pair_cost) - mean) < 5 * sd / (50 * N) ** 0.5
    i, j = draw_pairs(sinkhorn_plan(cost, reg=bridge.reg), 50 * N, generator=g)
    assert abs(float(cost[i, j].mean()) - mean) < 5 * sd / (50 * N) ** 0.5


def test_gibbs_kernel_is_the_exponential_of_the_cost():
    x0, x1 = batch("8gaussians", 4)
    x0, x1 = x0.double(), x1.double()
    k = gibbs_kernel(x0, x1, reg=0.5, dtype=torch.float64)
    torch.testing.assert_close(k, torch.exp(-(torch.cdist(x0, x1) ** 2) / 0.5))
    assert cost_bound(x0, x1) >= float(squared_cost(x0, x1).max())


def optimum(x0: torch.Tensor, x1: torch.Tensor) -> tuple[np.ndarray, float]:
    """The float64 cost matrix and scipy's optimal mean assignment cost."""
    cost = squared_cost(x0.double(), x1.double()).numpy()
    rows, cols = linear_sum_assignment(cost)
    return cost, float(cost[rows, cols].mean())


@pytest.mark.parametrize("name", ["moons", "8gaussians"])
def test_certified_assignment_at_batch_512_is_optimal_and_its_gap_bounds_it(name):
    """The sparse solver's pairing has scipy's optimal cost, and its certified gap is a true
    bound: 0 <= cost - OPT <= gap <= 1e-9 cost (certified exact, no dense fallback)."""
    x0, x1 = batch(name, 5)
    result = certified_assignment(x0, x1)
    assert sorted(result.cols.tolist()) == list(range(N))
    cost, opt = optimum(x0, x1)
    mean = float(cost[np.arange(N), result.cols.numpy()].mean())
    assert mean == pytest.approx(result.cost, rel=1e-12)
    assert -1e-12 <= mean - opt <= result.gap + 1e-12
    assert 0 <= result.gap <= 1e-9 * mean
    assert not result.dense


def test_dual_bound_is_weak_duality_and_tight_at_pots_dual():
    """mean(g^c) + mean(g) <= OPT for any g (here random ones), with equality at the optimal dual
    of POT's network simplex."""
    x0, x1 = batch("moons", 6)
    cost, opt = optimum(x0, x1)
    g = torch.Generator().manual_seed(0)
    for _ in range(5):
        potential = torch.randn(N, generator=g, dtype=torch.float64)
        assert dual_bound(torch.as_tensor(cost), potential)[1] <= opt + 1e-12
    a = np.full(N, 1 / N)
    _, log = ot.emd(a, a, cost, log=True)
    bound = dual_bound(torch.as_tensor(cost), torch.as_tensor(log["v"]))[1]
    assert bound == pytest.approx(opt, rel=1e-9)


def test_certified_assignment_falls_back_to_the_dense_solver_and_stays_exact():
    """One candidate per row and column and a single round cannot certify the assignment, so
    POT's dense solver decides; with more rounds the violated pairs and the feasible matching
    added to the graph let the sparse solver certify it."""
    x0, x1 = batch("8gaussians", 7)
    _, opt = optimum(x0, x1)
    dense = certified_assignment(x0, x1, k=1, max_rounds=1)
    assert dense.dense and dense.rounds == 1
    assert dense.cost == pytest.approx(opt, rel=1e-9)
    sparse = certified_assignment(x0, x1, k=1, max_rounds=30)
    assert not sparse.dense and sparse.rounds > 1
    assert sparse.cost == pytest.approx(opt, rel=1e-9)


def test_exact_ot_pairs_large_batches_by_the_certified_solver():
    x0, x1 = batch("moons", 8)
    coupling = ExactOT(sparse_from=N)
    assert coupling.last_gap is None
    i, j = coupling.pair(x0, x1)
    cost, opt = optimum(x0, x1)
    assert cost[i.numpy(), j.numpy()].mean() == pytest.approx(opt, rel=1e-9)
    assert 0 <= coupling.last_gap <= 1e-9 * opt


@pytest.mark.parametrize("name", ["moons", "8gaussians", "25gaussians"])
def test_a_loose_tolerance_stops_at_a_pairing_certified_within_it(name):
    """tol = 0.01 (``ot(exact, gap = 0.01)``): a permutation whose cost is within its certified
    gap of scipy's optimum, the gap within 1% of the cost; the float32 bound behind it is a true
    lower bound (cost − gap ≤ OPT)."""
    x0, x1 = batch(name, 11)
    result = certified_assignment(x0, x1, tol=0.01)
    assert sorted(result.cols.tolist()) == list(range(N))
    cost, opt = optimum(x0, x1)
    mean = float(cost[np.arange(N), result.cols.numpy()].mean())
    assert mean == pytest.approx(result.cost, rel=1e-12)
    assert result.bound <= opt + 1e-12
    assert -1e-12 <= mean - opt <= result.gap + 1e-12
    assert 0 <= result.gap <= 0.01 * mean


def test_the_float32_bound_stays_below_the_optimum_in_64_dimensions():
    """The rounding allowance grows with the dimension (length-d dot products): on 8×8 digits
    against Gaussian noise, batch 256, the bound of a loose tolerance is still ≤ OPT."""
    x1 = load_dataset("digits", split="train", seed=0, n=256).x.float().reshape(256, -1)
    x0 = torch.randn(256, 64, generator=torch.Generator().manual_seed(0))
    result = certified_assignment(x0, x1, tol=0.05)
    cost = squared_cost(x0.double(), x1.double()).numpy()
    rows, cols = linear_sum_assignment(cost)
    opt = float(cost[rows, cols].mean())
    assert result.bound <= opt
    assert result.cost - opt <= result.gap <= 0.05 * result.cost


def test_exact_ot_with_a_gap_pairs_every_equal_batch_by_the_certified_solver():
    """``ot(exact, gap = 0.01)``: the pairing's cost is within 1% of the
    optimum and ``last_relative_gap`` reports its certified gap; the exact coupling reports 0
    for POT's dense plan."""
    x0, x1 = batch("8gaussians", 12)
    coupling = ExactOT(gap=0.01)
    i, j = coupling.pair(x0, x1)
    cost, opt = optimum(x0, x1)
    mean = float(cost[i.numpy(), j.numpy()].mean())
    assert opt <= mean <= opt * (1 + 0.01 / 0.99)
    assert 0 <= coupling.last_relative_gap <= 0.01
    assert coupling.last_gap == pytest.approx(coupling.last_relative_gap * mean, rel=1e-9)
    assert mean - opt <= coupling.last_gap + 1e-12
    exact = ExactOT(sparse_from=N + 1)
    exact.pair(x0, x1)
    assert exact.last_relative_gap == 0.0 and exact.last_gap is None


def test_exact_ot_keeps_pots_solver_for_high_dimensional_points():
    """784 coordinates at 512 points: POT's dense plan (no certified gap recorded); the same
    batch projected to 2 coordinates goes to the certified solver."""
    x1 = load_dataset("fontdigits", split="train", seed=0, n=N).x.float().reshape(N, -1)
    x0 = torch.randn(N, x1.shape[1], generator=torch.Generator().manual_seed(0))
    coupling = ExactOT()
    _, j = coupling.pair(x0, x1)
    assert coupling.last_gap is None and coupling.last_relative_gap == 0.0
    assert sorted(j.tolist()) == list(range(N))
    coupling.pair(x0[:, :2], x1[:, :2])
    assert coupling.last_gap is not None


@pytest.mark.parametrize("gap", [-0.1, 1.0])
def test_exact_ot_refuses_a_gap_outside_0_1(gap):
    with pytest.raises(ValueError, match=rf"^gap must be in \[0, 1\), got {gap}$"):
        ExactOT(gap=gap)


@pytest.mark.parametrize("tol", [1e-9, 0.01])
def test_identical_batches_are_certified_by_the_identity_without_the_dense_solver(tol):
    """OPT = 0 (x1 = x0): no relative gap can close on a bound of −1e-17, so the acceptance
    has an absolute floor at float64 rounding of the largest cost."""
    x0, _ = batch("moons", 13)
    result = certified_assignment(x0, x0.clone(), tol=tol)
    assert result.cols.tolist() == list(range(N))
    assert result.cost == 0.0 and not result.dense and result.rounds <= 2  # (was 8, then dense)
    assert -1e-12 <= result.bound <= 0.0


def test_reduced_precision_matmuls_leave_the_certificate_to_float64():
    """With TF32/bf16 products allowed the float32 bound is not trusted: the pairing is still
    certified within the tolerance, by the float64 c-transform."""
    x0, x1 = batch("8gaussians", 14)
    a, b = x0.double(), x1.double()
    cost32 = squared_cost(x0, x1)
    alpha, beta = np.zeros(N), np.zeros(N)
    _, bound = _screen(cost32, alpha, beta, a, reach=cost_bound(a, b), k=2)
    assert math.isfinite(bound) and bound <= float(cost32.min(1).values.double().mean())
    torch.set_float32_matmul_precision("medium")
    try:
        assert _screen(cost32, alpha, beta, a, reach=cost_bound(a, b), k=2)[1] == -math.inf
        result = certified_assignment(x0, x1, tol=0.01)
    finally:
        torch.set_float32_matmul_precision("highest")
    _, opt = optimum(x0, x1)
    assert result.bound <= opt + 1e-12 and result.cost - opt <= result.gap <= 0.01 * result.cost


def test_entropic_kernel_goes_float32_when_the_kernel_shows_the_cost_fits():
    """Batch 2048, ε = 0.5: the O(B) bound gives max C/ε > 70 (float64 before), the float32
    kernel's smallest entry shows max C/ε ≤ 78, so Sinkhorn runs in float32, and its conditional
    plan π(j | i) ∝ K_ij v_j is float64's to 1e-5 in ℓ1 per row (mean)."""
    n = 2048
    x1 = load_dataset("moons", split="train", seed=0, n=n).x.float()
    x0 = torch.randn(n, 2, generator=torch.Generator().manual_seed(0))
    assert cost_bound(x0, x1) / 0.5 > FLOAT32_RATIO
    kernel, _, v = entropic_scalings(x0, x1, reg=0.5)
    assert kernel.dtype == torch.float32
    k64 = gibbs_kernel(x0, x1, reg=0.5, dtype=torch.float64)
    _, v64 = sinkhorn_scalings(k64)
    rows32 = (kernel * v[None, :]).double()
    rows64 = k64 * v64[None, :]
    rows32, rows64 = rows32 / rows32.sum(1, keepdim=True), rows64 / rows64.sum(1, keepdim=True)
    assert float((rows32 - rows64).abs().sum(1).mean()) < 1e-5


def test_entropic_kernel_stays_float64_beyond_the_float32_range(monkeypatch):
    """Two points 2a apart with 4a²/ε = 84: the float32 kernel's smallest entry e^-84 is below
    e^-78, so float64; and scalings that overflow in float32 send the batch to float64 too."""
    import gendsl.objectives.couplings as couplings

    a = math.sqrt(84 * 0.5 / 4)
    x0 = torch.tensor([[-a, 0.0], [-a, 0.1]])
    x1 = torch.tensor([[a, 0.0], [a, -0.1]])
    assert entropic_scalings(x0, x1, reg=0.5)[0].dtype == torch.float64
    real = couplings.sinkhorn_scalings

    def overflowing(kernel, **kw):
        u, v = real(kernel, **kw)
        return (u, v * math.inf) if kernel.dtype == torch.float32 else (u, v)

    monkeypatch.setattr(couplings, "sinkhorn_scalings", overflowing)
    x0, x1 = batch("moons", 15)
    kernel, _, v = entropic_scalings(x0[:64], x1[:64], reg=0.5)
    assert kernel.dtype == torch.float64 and bool(torch.isfinite(v).all())


def test_sinkhorn_stops_at_the_first_check_once_its_scalings_overflow():
    kernel = torch.ones(4, 4)
    kernel[0] = 0.0  # row 0 has no mass: u_0 = inf, the marginal error is NaN
    u, _ = sinkhorn_scalings(kernel, max_iter=10**9)  # would not return without the stop
    assert not bool(torch.isfinite(u).all())


def test_the_candidate_graph_computes_each_arc_cost_once(monkeypatch):
    """Rounds add arcs; the graph keeps them unique, row-major sorted, with float64 costs equal
    to ‖x0_r − x1_c‖², and computes only the new arcs' costs."""
    import gendsl.objectives.ot_certified as certified

    g = torch.Generator().manual_seed(0)
    points = (torch.randn(6, 3, generator=g).double().numpy(),
              torch.randn(6, 3, generator=g).double().numpy())  # fmt: skip
    computed = []
    real = certified.arc_costs

    def counting(pts, rows, cols):
        computed.append(len(rows))
        return real(pts, rows, cols)

    monkeypatch.setattr(certified, "arc_costs", counting)
    arcs = certified._Arcs(points)
    arcs.add(np.array([0, 2, 2, 5]), np.array([1, 3, 3, 0]))
    arcs.add(np.array([2, 1, 0]), np.array([3, 4, 1]))  # one new arc
    assert computed == [3, 1]
    assert arcs.keys.tolist() == [0 * 6 + 1, 1 * 6 + 4, 2 * 6 + 3, 5 * 6 + 0]
    rows, cols = arcs.keys // 6, arcs.keys % 6
    np.testing.assert_array_equal(arcs.costs, ((points[0][rows] - points[1][cols]) ** 2).sum(1))


def test_certified_assignment_needs_equal_batches():
    with pytest.raises(ValueError, match=r"^an assignment needs equal batches, got 4 and 3$"):
        certified_assignment(torch.zeros(4, 2), torch.zeros(3, 2))


def test_annealed_potentials_at_one_eps_give_pots_sinkhorn_plan():
    """With eps_start = eps_end = ε and enough iterations, exp((f_i + g_j - C_ij)/ε) is the
    entropic plan: POT's log-domain Sinkhorn at the same ε, to 1e-6 in l1."""
    x0, x1 = batch("moons", 9)
    x0, x1 = x0[:64], x1[:64]
    cost = squared_cost(x0, x1)
    f, g = annealed_potentials(cost, cost.T.contiguous(), eps_start=0.5, eps_end=0.5, iters=300)
    plan = torch.exp((f[:, None] + g[None, :] - cost) / 0.5).double()
    a = np.full(64, 1 / 64)
    ref = ot.sinkhorn(a, a, cost.double().numpy(), 0.5, method="sinkhorn_log", stopThr=1e-12)
    assert float((plan - torch.as_tensor(ref)).abs().sum()) < 1e-5
