"""Minibatch OT couplings: candidate solvers side by side, and the step of OT-CFM and SB-CFM
against flow matching's.

1. Solvers on one batch of x0 ~ N(0, I) and x1 ~ moons (squared Euclidean cost), per batch size:
   POT's network simplex (``ot.emd``, the exact reference and gendsl's ``ot(exact)`` below
   ``SPARSE_FROM`` points), scipy's shortest augmenting path (``linear_sum_assignment``, exact),
   gendsl's certified sparse solver (``certified_assignment``, ``ot(exact)`` from
   ``SPARSE_FROM`` points: ε-scaling Sinkhorn potentials, candidate pairs, POT's sparse network
   simplex, weak-duality certificate; its rounds are shown), the same stopped at a certified
   relative gap of 1% (``ot(exact, gap = 0.01)``), a device-agnostic torch auction
   with ε-scaling (Bertsekas 1988; Bertsekas & Castañon 1989), whose final prices certify
   cost ≤ OPT + n ε (ε-complementary slackness) and whose dual bound gives the exact gap
   reported here (``--skip-auction`` leaves it out); for the entropic plan at ε = 2σ² = 0.5:
   POT's float64 Sinkhorn on numpy with pairs drawn by ``torch.multinomial`` on the flattened
   plan (gendsl before) and gendsl's ``schrodinger`` coupling (Sinkhorn in torch on the batch's
   device, one x1 per x0 drawn from the row's conditional).  Columns: ms (minimum of
   ``--reps``), the pairing's mean cost over the exact one minus 1, and the certified gap.
2. Steps: loss + backward of ``stdlib/flow_matching.gen``, ``ot_cfm.gen`` and ``sb_cfm.gen`` on
   2-D moons, ``ot_cfm.gen`` with its coupling forced onto POT's dense solver
   (``ot_cfm [POT emd]``) and with ``ot(exact, gap = 0.01)``, interleaved (rotating order, the
   median of each over repetitions and the median of the per-repetition ratios to flow
   matching), and the certified relative gaps of the last.

3. ``--crossover 256,384,512,768,1024,2048``: where ``ot(exact)`` switches from POT to the
   certified solver, per data set (2-D sets, 64-pixel digits, 784-pixel fontdigits).
4. ``--sinkhorn 1024,2048``: the entropic coupling's Sinkhorn in the precision gendsl picks
   against float64.

    OMP_NUM_THREADS=1 python benchmarks/ot_couplings.py [--sizes 512,2048] [--reps 5]
    OMP_NUM_THREADS=1 python benchmarks/ot_couplings.py --crossover 256,512,1024 [--batches 4]
    OMP_NUM_THREADS=1 python benchmarks/ot_couplings.py --sinkhorn 1024,2048
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable

import numpy as np
import ot
import torch
from scipy.optimize import linear_sum_assignment

from gendsl.data import load_dataset
from gendsl.lower import load
from gendsl.objectives.couplings import (
    SchrodingerBridge,
    cost_bound,
    entropic_scalings,
    gibbs_kernel,
    sinkhorn_scalings,
    squared_cost,
)
from gendsl.objectives.ot_certified import EMD_MAX_ITER, certified_assignment
from gendsl.resources import stdlib_dir

__all__ = ["GAP", "auction", "main"]

#: The certified relative gap of the ε-close coupling measured beside the exact one.
GAP = 0.01


def auction(cost: torch.Tensor, *, rel_gap: float = 0.01, theta: float = 5.0):
    """An ε-scaling Jacobi auction for the assignment min Σ C_{i σ(i)} (Bertsekas 1988): every
    unassigned row bids for its best column j* at price p_j* + (v₁ − v₂) + ε (v = −C_i − p, best
    and second best); each column takes its highest bid.  Each phase ends with ε-complementary
    slackness, hence cost ≤ OPT + n ε; phases divide ε by ``theta`` until the dual bound
    D = Σ_i min_j (C_ij + p_j) − Σ_j p_j ≤ OPT certifies cost − D ≤ ``rel_gap`` · D.
    Returns (the column of each row, the certified gap cost − D, the number of bidding rounds)."""
    n = cost.shape[0]
    prices = torch.zeros(n, dtype=cost.dtype)
    eps, rounds = float(cost.max()) / 4, 0
    rows = torch.arange(n)
    while True:
        owner = torch.full((n,), -1)
        assign = torch.full((n,), -1)
        bidders = rows
        while bidders.numel():
            rounds += 1
            top = (-cost[bidders] - prices).topk(2, dim=1)
            best = top.indices[:, 0]
            bid = prices[best] + top.values[:, 0] - top.values[:, 1] + eps
            high = torch.full((n,), -torch.inf, dtype=cost.dtype).scatter_reduce(
                0, best, bid, "amax"
            )
            won = bid == high[best]
            winner = torch.full((n,), -1).scatter_reduce(0, best[won], bidders[won], "amax")
            cols = (winner >= 0).nonzero().squeeze(1)
            old = owner[cols]
            assign[old[old >= 0]] = -1
            owner[cols] = winner[cols]
            assign[winner[cols]] = cols
            prices[cols] = high[cols]
            bidders = (assign < 0).nonzero().squeeze(1)
        primal = float(cost[rows, assign].sum())
        dual = float((cost + prices).min(1).values.sum() - prices.sum())
        if primal - dual <= rel_gap * dual:
            return assign, primal - dual, rounds
        eps /= theta


def _ms(fn: Callable[[], object], reps: int) -> tuple[float, object]:
    fn()
    best, out = float("inf"), None
    for _ in range(reps):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    return 1e3 * best, out


def solvers(n: int, reps: int, skip_auction: bool) -> None:
    g = torch.Generator().manual_seed(n)
    x0 = torch.randn(n, 2, generator=g)
    x1 = load_dataset("moons", split="train", seed=n, n=n).x.float()
    c = squared_cost(x0, x1).double()
    a = np.full(n, 1 / n)
    ms, plan = _ms(lambda: ot.emd(a, a, c.numpy(), numItermax=EMD_MAX_ITER), reps)
    exact = float((torch.as_tensor(plan) * c).sum())
    print(f"| {n} | exact: POT emd (gendsl ot(exact) below SPARSE_FROM) | {ms:.1f} | 0 | 0 |")
    ms, (r, j) = _ms(lambda: linear_sum_assignment(c.numpy()), reps)
    print(f"| {n} | exact: scipy linear_sum_assignment | {ms:.1f} | "
          f"{c.numpy()[r, j].mean() / exact - 1:.1e} | 0 |")  # fmt: skip
    ms, res = _ms(lambda: certified_assignment(x0, x1), reps)
    rel = float(c[torch.arange(n), res.cols].mean()) / exact - 1
    print(f"| {n} | exact: certified sparse network simplex ({res.rounds} rounds"
          f"{', dense fallback' if res.dense else ''}) | {ms:.1f} | {rel:.1e} | "
          f"{res.gap / exact:.1e} |")  # fmt: skip
    ms, res = _ms(lambda: certified_assignment(x0, x1, tol=GAP), reps)
    rel = float(c[torch.arange(n), res.cols].mean()) / exact - 1
    print(f"| {n} | certified within {GAP:g}: ot(exact, gap = {GAP:g}) ({res.rounds} "
          f"round{'s' if res.rounds > 1 else ''}) | {ms:.1f} | {rel:.1e} | "
          f"{res.gap / exact:.1e} |")  # fmt: skip
    if not skip_auction:
        ms, (j, gap, rounds) = _ms(lambda: auction(c.float()), 1)
        rel = float(c[torch.arange(n), j].mean()) / exact - 1
        print(f"| {n} | auction, torch, certified 1% ({rounds} rounds) | {ms:.1f} | "
              f"{rel:.1e} | {gap / n / exact:.1e} |")  # fmt: skip
    _entropic(x0, x1, c, exact, reps)


def _entropic(
    x0: torch.Tensor, x1: torch.Tensor, c: torch.Tensor, exact: float, reps: int
) -> None:
    n = x0.shape[0]
    a = np.full(n, 1 / n)
    bridge = SchrodingerBridge(0.5)

    def pot_sinkhorn():
        p = torch.as_tensor(ot.sinkhorn(a, a, c.numpy(), bridge.reg))
        k = torch.multinomial(p.reshape(-1) / p.sum(), n, replacement=True)
        return k // n, k % n

    for name, fn in (("POT numpy Sinkhorn + multinomial", pot_sinkhorn),
                     ("gendsl schrodinger (torch)", lambda: bridge.pair(x0, x1))):  # fmt: skip
        ms, (i, j) = _ms(fn, reps)
        rel = float(c[i, j].mean()) / exact - 1
        print(f"| {n} | entropic ε = 0.5: {name} | {ms:.1f} | {rel:.2f} | - |", flush=True)


def steps(n: int, reps: int) -> None:
    x1 = load_dataset("moons", split="train", seed=0, n=n).x.float()
    specs = ("flow_matching", "ot_cfm", "sb_cfm")
    models = {k: load(str(stdlib_dir() / f"{k}.gen"), D=2) for k in specs}
    models["ot_cfm [POT emd]"] = load(str(stdlib_dir() / "ot_cfm.gen"), D=2)
    models["ot_cfm [POT emd]"].coupling.sparse_from = sys.maxsize
    models[f"ot_cfm, gap = {GAP:g}"] = load(
        f'import "stdlib/ot_cfm.gen"\nmodel m extends ot_cfm {{\n'
        f"  couple x0, x1 by ot(exact, gap = {GAP:g})\n}}",
        D=2,
    )
    names = tuple(models)
    gaps: list[float] = []
    times: dict[str, list[float]] = {k: [] for k in names}
    for rep in range(reps + 1):
        for k in range(len(names)):
            name = names[(rep + k) % len(names)]
            start = time.perf_counter()
            models[name].loss({"x1": x1}).backward()
            if rep:
                times[name].append(time.perf_counter() - start)
            if name.startswith("ot_cfm, gap"):
                gaps.append(models[name].coupling.last_relative_gap)
    base = times["flow_matching"]
    for name in names:
        ratio = statistics.median(a / b for a, b in zip(times[name], base, strict=True))
        print(f"| {n} | {name} | {1e3 * statistics.median(times[name]):.1f} | {ratio:.2f} |",
              flush=True)  # fmt: skip
    print(f"| {n} | (certified relative gaps of ot_cfm, gap = {GAP:g}: median "
          f"{statistics.median(gaps):.1e}, max {max(gaps):.1e}) | | |", flush=True)


#: The data sets of the crossover table and their dimension (x0 ~ N(0, I) of the same size).
CROSSOVER_DATA = ("moons", "8gaussians", "25gaussians", "digits", "fontdigits")


def _batch_pair(name: str, n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """x0 ~ N(0, I) and n points of ``name`` (flattened), drawn from ``seed``."""
    x1 = load_dataset(name, split="train", seed=seed, n=n).x.float().reshape(n, -1)
    return torch.randn(n, x1.shape[1], generator=torch.Generator().manual_seed(seed)), x1


def _pot_exact(x0: torch.Tensor, x1: torch.Tensor) -> np.ndarray:
    """POT's dense plan on the float64 cost formed from the points, as ``ot(exact)`` does."""
    a = np.full(x0.shape[0], 1 / x0.shape[0])
    return ot.emd(a, a, squared_cost(x0, x1).double().numpy(), numItermax=EMD_MAX_ITER)


def _timed(fn: Callable[..., object], *args, **kwargs) -> tuple[float, object]:
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    return time.perf_counter() - start, out


def crossover(sizes: list[int], batches: int) -> None:
    """Where ``ot(exact)`` switches solvers (``SPARSE_FROM``, ``SPARSE_MAX_DIM``): per data set
    and batch size, the median over ``batches`` batches of POT's dense solver on the float64
    cost (formed from the points, as ``ot(exact)`` does), the certified exact solver and the
    1% certificate, each batch's solvers timed back to back, with the median ratio and rounds."""
    for name in CROSSOVER_DATA:
        for n in sizes:
            if name == "digits" and n > 1024:  # the 8x8 digits' train split has 1497 images
                continue
            times: dict[str, list[float]] = {"pot": [], "exact": [], "gap": []}
            rounds: list[int] = []
            for seed in range(batches):
                x0, x1 = _batch_pair(name, n, seed)
                times["pot"].append(_timed(_pot_exact, x0, x1)[0])
                seconds, exact = _timed(certified_assignment, x0, x1)
                times["exact"].append(seconds)
                rounds.append(exact.rounds)
                times["gap"].append(_timed(certified_assignment, x0, x1, tol=GAP)[0])
            ms = {k: 1e3 * statistics.median(v) for k, v in times.items()}
            ratio = statistics.median(
                e / p for e, p in zip(times["exact"], times["pot"], strict=True)
            )
            print(f"| {name} | {x1.shape[1]} | {n} | {ms['pot']:.1f} | {ms['exact']:.1f} "
                  f"({ratio:.2f}, {statistics.median(rounds):g} rounds) | {ms['gap']:.1f} |",
                  flush=True)  # fmt: skip


def _float64_scalings(x0: torch.Tensor, x1: torch.Tensor, reg: float):
    kernel = gibbs_kernel(x0, x1, reg=reg, dtype=torch.float64)
    return (kernel, *sinkhorn_scalings(kernel))


def sinkhorn_precision(sizes: list[int], reps: int) -> None:
    """The entropic coupling's Sinkhorn on moons at ε = 0.5 in the precision gendsl picks
    (:func:`entropic_scalings`) against float64: ms (minimum of ``reps``), the O(B) bound on
    max C/ε, the actual max C/ε, and the ℓ1 distance between the two plans."""
    reg = SchrodingerBridge(0.5).reg
    for n in sizes:
        x0, x1 = _batch_pair("moons", n, n)
        auto = [_timed(entropic_scalings, x0, x1, reg=reg) for _ in range(reps)]
        wide = [_timed(_float64_scalings, x0, x1, reg) for _ in range(reps)]
        k_auto, u_auto, v_auto = auto[-1][1]
        k_64, u_64, v_64 = wide[-1][1]
        plan_auto = (u_auto[:, None] * k_auto * v_auto[None, :]).double()
        plan_64 = u_64[:, None] * k_64 * v_64[None, :]
        actual = float(squared_cost(x0, x1).max()) / reg
        ms_auto, ms_64 = (1e3 * min(t for t, _ in runs) for runs in (auto, wide))
        print(f"| {n} | {cost_bound(x0, x1) / reg:.1f} | {actual:.1f} | "
              f"{str(k_auto.dtype).removeprefix('torch.')} {ms_auto:.1f} | {ms_64:.1f} | "
              f"{float((plan_auto - plan_64).abs().sum()):.1e} |", flush=True)  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="512,2048")
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--step-reps", type=int, default=15)
    parser.add_argument("--skip-solvers", action="store_true")
    parser.add_argument("--skip-auction", action="store_true")
    parser.add_argument(
        "--crossover",
        metavar="N,N,...",
        help="only the solver-switch table (POT, certified exact, 1%%) at these batch sizes",
    )
    parser.add_argument("--batches", type=int, default=4, help="batches per --crossover cell")
    parser.add_argument(
        "--sinkhorn", metavar="N,N,...", help="only the entropic Sinkhorn's precision table"
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    sizes = [int(s) for s in args.sizes.split(",")]
    print(f"command: python benchmarks/ot_couplings.py {' '.join(sys.argv[1:])}".rstrip())
    print(f"torch {torch.__version__}, POT {ot.__version__}, 1 thread\n")
    if args.crossover:
        print("| data | dim | batch | POT ms | certified exact ms (÷ POT, rounds) | 1% ms |")
        print("|---|---:|---:|---:|---:|---:|", flush=True)
        crossover([int(v) for v in args.crossover.split(",")], args.batches)
        return
    if args.sinkhorn:
        print("| batch | bound max C/ε | max C/ε | chosen: ms | float64 ms | ℓ1(plans) |")
        print("|---:|---:|---:|---:|---:|---:|", flush=True)
        sinkhorn_precision([int(v) for v in args.sinkhorn.split(",")], args.reps)
        return
    if not args.skip_solvers:
        print("| batch | solver | ms | mean cost / exact − 1 | certified gap / exact |")
        print("|---|---|---|---|---|", flush=True)
        for n in sizes:
            solvers(n, args.reps, args.skip_auction)
        print()
    print("| batch | spec | ms/step (loss + backward) | ratio to flow_matching |")
    print("|---|---|---|---|", flush=True)
    for n in sizes:
        steps(n, args.step_reps)


if __name__ == "__main__":
    main()
