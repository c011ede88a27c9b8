"""Couplings: the exact OT pairing against a brute-force search over permutations, Sinkhorn plan
marginals and limits, the Schrödinger regularisation, and pairs drawn with the plan's
frequencies."""

from __future__ import annotations

import itertools

import pytest
import torch

from gendsl.objectives.couplings import (
    SINKHORN_TOL,
    EntropicOT,
    ExactOT,
    Independent,
    SchrodingerBridge,
    draw_pairs,
    draw_rows,
    exact_ot_plan,
    plan_cost,
    sinkhorn_plan,
    squared_cost,
)

torch.set_num_threads(1)


def brute_force_min_cost(x0: torch.Tensor, x1: torch.Tensor) -> float:
    n = x0.shape[0]
    return min(
        sum(float(((x0[i] - x1[p[i]]) ** 2).sum()) for i in range(n))
        for p in itertools.permutations(range(n))
    )


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_exact_ot_pairing_minimises_the_total_cost(seed):
    g = torch.Generator().manual_seed(seed)
    x0 = torch.randn(6, 2, generator=g, dtype=torch.float64)
    x1 = torch.randn(6, 2, generator=g, dtype=torch.float64) + 1.0
    i, j = ExactOT().pair(x0, x1)
    assert sorted(j.tolist()) == list(range(6))  # a permutation: every point used once
    cost = float(((x0[i] - x1[j]) ** 2).sum())
    assert cost == pytest.approx(brute_force_min_cost(x0, x1), rel=1e-12)
    plan = exact_ot_plan(squared_cost(x0, x1))
    assert float(plan_cost(plan, squared_cost(x0, x1))) == pytest.approx(cost / 6, rel=1e-12)


def test_squared_cost_flattens_points():
    x0 = torch.tensor([[[1.0, 2.0]], [[0.0, 0.0]]])
    x1 = torch.tensor([[[1.0, 0.0]]])
    torch.testing.assert_close(squared_cost(x0, x1), torch.tensor([[4.0], [1.0]]))


def test_exact_ot_with_unequal_batches_draws_from_the_plan_support():
    g = torch.Generator().manual_seed(3)
    x0, x1 = torch.randn(4, 2, generator=g), torch.randn(6, 2, generator=g)
    plan = exact_ot_plan(squared_cost(x0, x1))
    torch.testing.assert_close(plan.sum(1), torch.full((4,), 0.25))
    i, j = ExactOT().pair(x0, x1, generator=g)
    assert i.shape == (6,) and bool((plan[i, j] > 0).all())


def test_sinkhorn_plan_has_uniform_marginals_and_the_right_limits():
    g = torch.Generator().manual_seed(4)
    x0 = torch.randn(7, 2, generator=g, dtype=torch.float64)
    x1 = torch.randn(5, 2, generator=g, dtype=torch.float64) + 2.0
    cost = squared_cost(x0, x1)
    for reg in (0.05, 1.0, 100.0):
        plan = sinkhorn_plan(cost, reg=reg)
        # Sinkhorn stops once the column marginal is within SINKHORN_TOL (l2); the rows are exact
        # up to the float32 rounding of a sum of five terms
        assert float((plan.sum(0) - 1 / 5).norm()) < SINKHORN_TOL
        torch.testing.assert_close(
            plan.sum(1), torch.full((7,), 1 / 7, dtype=torch.float64), rtol=0, atol=1e-6
        )
    exact = float(plan_cost(exact_ot_plan(cost), cost))
    costs = [float(plan_cost(sinkhorn_plan(cost, reg=r), cost)) for r in (0.01, 1.0, 1e4)]
    assert exact <= costs[0] < costs[1] < costs[2]
    assert costs[0] == pytest.approx(exact, rel=0.02)
    # a huge regularisation gives the independent plan (up to C/ε ≈ 1e-5 relative and the
    # stopping tolerance)
    torch.testing.assert_close(
        sinkhorn_plan(cost, reg=1e6),
        torch.full((7, 5), 1 / 35, dtype=torch.float64),
        rtol=0,
        atol=SINKHORN_TOL,
    )


def test_schrodinger_uses_two_sigma_squared():
    bridge = SchrodingerBridge(0.5)
    assert bridge.reg == pytest.approx(0.5)
    assert SchrodingerBridge(0.1).reg == pytest.approx(0.02)
    with pytest.raises(ValueError, match="sigma must be > 0, got -1"):
        SchrodingerBridge(-1)
    with pytest.raises(ValueError, match="reg must be > 0, got 0"):
        EntropicOT(0)


def test_drawn_pairs_follow_the_plan():
    plan = torch.tensor([[0.1, 0.0, 0.3], [0.2, 0.4, 0.0]])
    i, j = draw_pairs(plan, 40_000, generator=torch.Generator().manual_seed(5))
    freq = torch.zeros(2, 3)
    freq.index_put_((i, j), torch.ones(i.shape[0]), accumulate=True)
    torch.testing.assert_close(freq / i.shape[0], plan, atol=0.01, rtol=0)


def test_entropic_pairs_prefer_near_points():
    """Two far-apart clusters: with small reg nearly every pair stays inside its cluster."""
    g = torch.Generator().manual_seed(6)
    x0 = torch.cat([torch.randn(32, 2, generator=g) * 0.1 - 5, torch.randn(32, 2, generator=g)])
    x1 = torch.cat([torch.randn(32, 2, generator=g) * 0.1 - 5, torch.randn(32, 2, generator=g)])
    i, j = EntropicOT(0.5).pair(x0, x1, generator=g)
    assert float(((i < 32) == (j < 32)).float().mean()) > 0.99
    i, j = Independent().pair(x0, x1)
    assert torch.equal(i, j)


def test_log_domain_sinkhorn_agrees_with_matrix_scaling(monkeypatch):
    import gendsl.objectives.couplings as couplings

    g = torch.Generator().manual_seed(7)
    cost = squared_cost(torch.randn(9, 2, generator=g), torch.randn(9, 2, generator=g))
    monkeypatch.setattr(couplings, "FLOAT32_RATIO", 0.0)
    scaled = sinkhorn_plan(cost.double(), reg=0.5, tol=1e-12)
    monkeypatch.setattr(couplings, "LOG_DOMAIN_RATIO", 0.0)
    torch.testing.assert_close(sinkhorn_plan(cost.double(), reg=0.5, tol=1e-12), scaled)


def test_drawn_pairs_never_take_an_entry_of_zero_mass():
    plan = torch.zeros(4, 5)
    plan[0, 4], plan[3, 0], plan[2, 2] = 0.5, 0.25, 0.25
    i, j = draw_pairs(plan, 5000, generator=torch.Generator().manual_seed(8))
    assert bool((plan[i, j] > 0).all())


def test_drawn_rows_follow_each_rows_conditional():
    plan = torch.tensor([[0.1, 0.0, 0.3], [0.2, 0.4, 0.0]]).repeat(20_000, 1)
    j = draw_rows(plan, generator=torch.Generator().manual_seed(9)).reshape(20_000, 2)
    for i, row in enumerate(([0.25, 0.0, 0.75], [1 / 3, 2 / 3, 0.0])):
        freq = torch.bincount(j[:, i], minlength=3) / 20_000
        torch.testing.assert_close(freq, torch.tensor(row), atol=0.01, rtol=0)


def test_a_trained_ot_cfm_logs_the_certified_gap_of_its_pairings(tmp_path):
    """``couple x0, x1 by ot(exact, gap = 0.01)`` compiles to the certified coupling, and the
    training log carries ``ot_gap``: the window's mean certified relative gap, within [0, 0.01];
    the exact coupling logs 0 (POT's plan), independent pairs log nothing."""
    from gendsl.data import load_dataset
    from gendsl.lower import load
    from gendsl.train import fit, read_metrics

    data = load_dataset("moons", split="train", seed=0, n=512).x
    logged = {}
    for name, coupling in (("gap", "ot(exact, gap = 0.01)"), ("exact", "ot(exact)"),
                           ("independent", "independent")):  # fmt: skip
        model = load(
            f'import "stdlib/ot_cfm.gen"\nmodel m extends ot_cfm {{\n'
            f"  couple x0, x1 by {coupling}\n}}",
            D=2,
        )
        if name == "gap":
            assert isinstance(model.coupling, ExactOT) and model.coupling.gap == 0.01
        kw = {"steps": 4, "batch_size": 256, "lr": 1e-3, "log_every": 2}
        fit(model, data, out_dir=tmp_path / name, progress=False, device="cpu", **kw)
        logged[name] = read_metrics(tmp_path / name / "metrics.jsonl")
    assert [r["step"] for r in logged["gap"]] == [2, 4]
    assert all(0 < r["ot_gap"] <= 0.01 for r in logged["gap"])  # a float32 bound: never 0
    assert all(r["ot_gap"] == 0.0 for r in logged["exact"])
    assert all("ot_gap" not in r for r in logged["independent"])
