"""The couplings at training batch size on the 2-D sets, against independent solvers: the exact
pairing against scipy's shortest-augmenting-path assignment, the entropic plan on the device
against POT's float64 Sinkhorn on numpy, and the drawn pairs' mean cost against the plan's."""

from __future__ import annotations

import numpy as np
import ot
import pytest
import torch
from scipy.optimize import linear_sum_assignment

from gendsl.data import load_dataset
from gendsl.objectives.couplings import (
    ExactOT,
    SchrodingerBridge,
    cost_bound,
    draw_pairs,
    gibbs_kernel,
    plan_cost,
    sinkhorn_plan,
    squared_cost,
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
    torch.testing.assert_close(k, torch.exp(-torch.cdist(x0, x1) ** 2 / 0.5))
    assert cost_bound(x0, x1) >= float(squared_cost(x0, x1).max())
