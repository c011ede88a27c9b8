"""gendsl's conditional flow matching side by side with torchcfm (Tong et al. 2024, TMLR; the
reference implementation, ``pip install --no-deps torchcfm``): the same data, network, optimiser,
batch and steps, over several seeds, with W2, the normalised path energy and ms/step.

* Data: torchcfm's own samplers (``torchcfm.utils``, re-implemented here because that module
  imports torchdyn and matplotlib): ``8gaussians`` = eight Gaussians of covariance √0.1·I at
  radius 5, ``moons`` = torchdyn's moons (points evenly spaced on the two arcs plus one uniform
  U[0, 0.2] shift added to both coordinates) scaled by 3 and shifted by −1.  Pairs: N→moons,
  N→8gaussians and 8gaussians→moons.
* Network: torchcfm's ``MLP(dim = 2, w = 64, time_varying = True)``, three hidden layers of 64
  with SELU on [x, t]; gendsl's spec declares ``MLP(hidden = [64, 64, 64], time = concat)``,
  whose activations are swapped for SELU here (the language has no SELU), so both networks have
  the same architecture and PyTorch's default initialisation.
* Methods: I-CFM (independent pairs, x_t = (1 − t) x0 + t x1 + σ w, σ = 0.1), OT-CFM (the same
  path on exact minibatch OT pairs; ``otcfm-gap``: on pairs certified within 1% of the exact
  cost, ``ot(exact, gap = 0.01)``, torchcfm's column then being its exact OT-CFM) and SB-CFM
  (entropic pairs with ε = 2σ², Brownian-bridge path, σ = 0.5; torchcfm with
  ``ot_method = "sinkhorn"``).  gendsl trains the compiled spec's
  ``model.loss`` for every pair: N→data with ``x0 ~ Normal(0, 1)``, data→data with the source
  declared ``data x0 : real[D]`` (a transport between two data sets, docs/language.md) and the
  same fresh 8gaussians draws torchcfm gets given in the batch, ``model.loss({"x0": x0, "x1":
  x1})``.
* Optimiser: Adam, lr 1e-3; batch 512.  Both models are integrated by the same dopri5
  (``gendsl.sampling.velocity.integrate``, rtol = atol = 1e-5) from the same 2000 source points.
* W2: exact, to 2000 fresh target points.  NPE = |PE − W2²(source, target)| / W2²(source,
  target) with the path energy PE = E ∫ ‖v(x(t), t)‖² dt on 100 Euler steps (Tong et al. 2024,
  TMLR, Sec. 5.1).

With ``--reference`` the second column is gendsl with POT's pairing (:class:`PotCoupling`)
instead of torchcfm: the W2/NPE check of gendsl's device Sinkhorn against the reference plan.

    OMP_NUM_THREADS=1 python benchmarks/matching_torchcfm.py [--steps 2000] [--seeds 0,1,2]
    OMP_NUM_THREADS=1 python benchmarks/matching_torchcfm.py --methods sbcfm --reference
    OMP_NUM_THREADS=1 python benchmarks/matching_torchcfm.py --methods otcfm,otcfm-gap \
        --impls gendsl
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from collections.abc import Callable

import numpy as np
import ot
import torch
from torch import nn

from gendsl.lower import load
from gendsl.lower.matching import MatchingModel
from gendsl.metrics import w2
from gendsl.objectives.couplings import Coupling, squared_cost
from gendsl.sampling.velocity import integrate

__all__ = ["SAMPLERS", "main", "path_energy", "sample_8gaussians", "sample_moons"]

Sampler = Callable[[int, np.random.Generator], torch.Tensor]


def sample_8gaussians(n: int, rng: np.random.Generator) -> torch.Tensor:
    """torchcfm.utils.sample_8gaussians: centres 5·(unit vectors at multiples of 45°) plus
    N(0, √0.1·I) noise (torchcfm passes √var as the covariance matrix)."""
    s = 1 / math.sqrt(2)
    centres = 5 * np.array([(1, 0), (-1, 0), (0, 1), (0, -1), (s, s), (s, -s), (-s, s), (-s, -s)])
    noise = rng.standard_normal((n, 2)) * math.sqrt(math.sqrt(0.1))
    return torch.as_tensor(centres[rng.integers(0, 8, n)] + noise, dtype=torch.float32)


def sample_moons(n: int, rng: np.random.Generator) -> torch.Tensor:
    """torchcfm.utils.sample_moons = 3·torchdyn.datasets.generate_moons(n, noise = 0.2) − 1:
    points evenly spaced on the two arcs, each shifted by u·(1, 1), u ~ U[0, 0.2]."""
    n_out, n_in = n // 2, n - n // 2
    a, b = np.linspace(0, np.pi, n_out), np.linspace(0, np.pi, n_in)
    x = np.concatenate([np.cos(a), 1 - np.cos(b)])
    y = np.concatenate([np.sin(a), 1 - np.sin(b) - 0.5])
    points = np.stack([x, y], 1) + rng.random((n, 1)) * 0.2
    return torch.as_tensor(points * 3 - 1, dtype=torch.float32)


def sample_normal(n: int, rng: np.random.Generator) -> torch.Tensor:
    return torch.as_tensor(rng.standard_normal((n, 2)), dtype=torch.float32)


SAMPLERS: dict[str, Sampler] = {
    "normal": sample_normal,
    "8gaussians": sample_8gaussians,
    "moons": sample_moons,
}

PAIRS = ("normal:moons", "normal:8gaussians", "8gaussians:moons")

# method -> (gendsl coupling, gendsl path, σ)
METHODS = {
    "icfm": ("independent", "(1 - t) * x0 + t * x1 + sigma * w", 0.1),
    "otcfm": ("ot(exact)", "(1 - t) * x0 + t * x1 + sigma * w", 0.1),
    "otcfm-gap": ("ot(exact, gap = 0.01)", "(1 - t) * x0 + t * x1 + sigma * w", 0.1),
    "sbcfm": (
        "schrodinger(sigma = 0.5)",
        "(1 - t) * x0 + t * x1 + sigma * sqrt(t * (1 - t)) * w",
        0.5,
    ),
}

VelocityFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def gendsl_model(method: str, *, data_source: bool = False) -> MatchingModel:
    """The method's spec, compiled, with the MLP's activations swapped for SELU; with
    ``data_source`` its source x0 is declared data (a data -> data transport)."""
    couple, path, sigma = METHODS[method]
    source = "data x0 : real[D]" if data_source else "latent x0 : real[D]\n  x0 ~ Normal(0, 1)"
    model = load(
        f"""
model cfm {{
  data x1 : real[D]
  {source}
  let sigma = {sigma}
  couple x0, x1 by {couple}
  path x_t = {path}
  net v = MLP(hidden = [64, 64, 64], time = concat)
  predict velocity = v(x_t, t)
  loss flow_matching
}}""",
        D=2,
    )
    body = model.nets["v"].body
    for i, layer in enumerate(body):
        if isinstance(layer, nn.SiLU):
            body[i] = nn.SELU()
    return model


def torchcfm_matcher(method: str):
    from torchcfm.conditional_flow_matching import (
        ConditionalFlowMatcher,
        ExactOptimalTransportConditionalFlowMatcher,
        SchrodingerBridgeConditionalFlowMatcher,
    )

    sigma = METHODS[method][2]
    if method == "icfm":
        return ConditionalFlowMatcher(sigma=sigma)
    if method.startswith("otcfm"):  # torchcfm's exact plan (POT) for both
        return ExactOptimalTransportConditionalFlowMatcher(sigma=sigma)
    return SchrodingerBridgeConditionalFlowMatcher(sigma=sigma, ot_method="sinkhorn")


def train_gendsl(method, source, target, args, rng, coupling=None) -> tuple[VelocityFn, float]:
    normal = source is sample_normal
    model = gendsl_model(method, data_source=not normal)
    if coupling is not None:
        model.coupling = coupling
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)

    def v_fn(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return model.velocity(x, t, {})

    start = time.perf_counter()
    for _ in range(args.steps):
        # the same draws as torchcfm's loop: x0 first (data -> data), then x1
        batch = {} if normal else {"x0": source(args.batch, rng)}
        batch["x1"] = target(args.batch, rng)
        opt.zero_grad()
        loss = model.loss(batch)
        loss.backward()
        opt.step()
    seconds = time.perf_counter() - start
    return v_fn, 1e3 * seconds / args.steps


class PotCoupling(Coupling):
    """The reference pairing of the method, gendsl's before the torch Sinkhorn: POT's plan
    (float64 ``ot.emd`` or ``ot.sinkhorn`` on numpy) and n pairs drawn with replacement from
    the flattened plan by ``torch.multinomial``, as torchcfm's ``OTPlanSampler`` does (for the
    exact plan: the permutation itself, or with ``replace`` pairs drawn from it like the
    entropic ones, as torchcfm does)."""

    def __init__(self, reg: float | None, *, replace: bool = False):
        self.reg, self.replace = reg, replace

    def pair(self, x0, x1, *, generator=None):
        n = x0.shape[0]
        a, c = np.full(n, 1 / n), squared_cost(x0, x1).double().numpy()
        if self.reg is None and not self.replace:
            return torch.arange(n), torch.as_tensor(ot.emd(a, a, c)).argmax(1)
        plan = ot.emd(a, a, c) if self.reg is None else ot.sinkhorn(a, a, c, self.reg)
        plan = torch.as_tensor(plan).reshape(-1)
        k = torch.multinomial(plan / plan.sum(), n, replacement=True, generator=generator)
        return k // n, k % n


def train_reference(method, source, target, args, rng) -> tuple[VelocityFn, float]:
    """gendsl with :class:`PotCoupling` in place of its own coupling."""
    reg = getattr(gendsl_model(method).coupling, "reg", None)
    coupling = PotCoupling(reg, replace=args.replace)
    return train_gendsl(method, source, target, args, rng, coupling=coupling)


def train_torchcfm(method, source, target, args, rng) -> tuple[VelocityFn, float]:
    from torchcfm.models.models import MLP

    net = MLP(dim=2, time_varying=True, w=64)
    matcher = torchcfm_matcher(method)
    opt = torch.optim.Adam(net.parameters(), lr=args.lr)
    start = time.perf_counter()
    for _ in range(args.steps):
        x0, x1 = source(args.batch, rng), target(args.batch, rng)
        opt.zero_grad()
        t, xt, ut = matcher.sample_location_and_conditional_flow(x0, x1)
        loss = torch.mean((net(torch.cat([xt, t[:, None]], dim=-1)) - ut) ** 2)
        loss.backward()
        opt.step()
    seconds = time.perf_counter() - start
    return (lambda x, t: net(torch.cat([x, t[:, None]], dim=-1))), 1e3 * seconds / args.steps


@torch.no_grad()
def path_energy(v_fn: VelocityFn, x0: torch.Tensor, *, steps: int = 100) -> float:
    """PE = E ∫₀¹ ‖v(x(t), t)‖² dt along Euler trajectories of ``steps`` steps from ``x0``."""
    x, total, dt = x0.clone(), torch.zeros(x0.shape[0]), 1.0 / steps
    for k in range(steps):
        v = v_fn(x, torch.full((x.shape[0],), k * dt))
        total += v.pow(2).sum(1) * dt
        x = x + dt * v
    return float(total.mean())


def evaluate(v_fn: VelocityFn, x0: torch.Tensor, x1: torch.Tensor) -> tuple[float, float]:
    """W2(Φ(x0), x1) and NPE."""
    with torch.no_grad():
        moved = integrate(v_fn, x0, solver="dopri5", rtol=1e-5, atol=1e-5)
    cost = torch.cdist(x0.double(), x1.double()).pow(2).numpy()
    n = x0.shape[0]
    w2_sq = float(ot.emd2(np.full(n, 1 / n), np.full(n, 1 / n), cost, numItermax=10**7))
    return w2(moved, x1), abs(path_energy(v_fn, x0) - w2_sq) / w2_sq


def _stats(values: list[float]) -> str:
    sd = statistics.stdev(values) if len(values) > 1 else float("nan")
    return f"{statistics.mean(values):.3f} ± {sd:.3f}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", default=",".join(PAIRS))
    parser.add_argument("--methods", default="icfm,otcfm")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=512)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--n", type=int, default=2000, help="evaluation points")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--reference",
        action="store_true",
        help="compare gendsl's coupling with POT's reference pairing instead of torchcfm",
    )
    parser.add_argument("--impls", default="all", help="all, or the one column to run")
    parser.add_argument(
        "--replace",
        action="store_true",
        help="the reference pairing draws pairs with replacement from the exact plan too",
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    import torchcfm

    print(f"command: python benchmarks/matching_torchcfm.py {' '.join(sys.argv[1:])}".rstrip())
    print(f"torch {torch.__version__}, torchcfm {torchcfm.__version__}, steps {args.steps}, "
          f"batch {args.batch}, Adam lr {args.lr}\n")  # fmt: skip
    print("| source → target | method | impl | W2 (mean ± sd) | NPE (mean ± sd) | ms/step | "
          "W2 per seed |\n|---|---|---|---|---|---|---|", flush=True)  # fmt: skip
    trainers = {"gendsl": train_gendsl, "torchcfm": train_torchcfm}
    if args.reference:
        trainers = {"gendsl": train_gendsl, "gendsl + POT coupling": train_reference}
    trainers = {k: v for k, v in trainers.items() if args.impls in ("all", k)}
    for pair in args.pairs.split(","):
        source, target = (SAMPLERS[k] for k in pair.split(":"))
        for method in args.methods.split(","):
            rows: dict[str, dict[str, list[float]]] = {
                k: {"w2": [], "npe": [], "ms": []} for k in trainers
            }
            for seed in (int(s) for s in args.seeds.split(",")):
                eval_rng = np.random.default_rng(10_000 + seed)
                x0, x1 = source(args.n, eval_rng), target(args.n, eval_rng)
                for impl, train in trainers.items():
                    torch.manual_seed(seed)
                    v_fn, ms = train(method, source, target, args, np.random.default_rng(seed))
                    w, npe = evaluate(v_fn, x0, x1)
                    for key, value in (("w2", w), ("npe", npe), ("ms", ms)):
                        rows[impl][key].append(value)
            for impl, r in rows.items():
                seeds = ", ".join(f"{v:.3f}" for v in r["w2"])
                print(f"| {pair.replace(':', ' → ')} | {method} | {impl} | {_stats(r['w2'])} | "
                      f"{_stats(r['npe'])} | {statistics.median(r['ms']):.2f} | {seeds} |",
                      flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
