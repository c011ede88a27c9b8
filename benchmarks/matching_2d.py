"""Flow matching on 2-D toy data: sample quality (W2), exact likelihood, NFE and straightness.

Each stdlib matching spec (flow_matching, ot_cfm, sb_cfm, rectified_flow, stochastic_interpolant)
is trained with :func:`gendsl.train.fit` on each data set (moons, 8gaussians), and one reflow of
the trained rectified flow (Liu et al. 2023) is trained for the same number of steps.  Then
2000 samples from the declared sampler and from 20 Euler steps are compared with 2000 held-out
points by the exact W2 distance (POT); the negative log-likelihood (instantaneous change of
variables, exact trace, dopri5 at rtol = atol = 1e-5, float64 state) is measured on 500 held-out
points; the straightness S = ∫ E‖(Z_1 - Z_0) - v(Z_t, t)‖² dt (Liu et al. 2023, eq. 7) on 1000
trajectories of 100 Euler steps.  The untrained model's W2 is shown for reference.

    python benchmarks/matching_2d.py                      # defaults: a few minutes on 2 cores
    python benchmarks/matching_2d.py --steps 10000 --data moons,8gaussians,checkerboard
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time

import torch

from gendsl.data import load_dataset
from gendsl.lower import load
from gendsl.lower.matching import MatchingModel
from gendsl.metrics import w2
from gendsl.resources import stdlib_dir
from gendsl.train import fit

SPECS = "flow_matching,ot_cfm,sb_cfm,rectified_flow,stochastic_interpolant"

HEAD = (
    "| spec | data | W2 untrained | W2 declared sampler (NFE) | W2 euler 20 | NLL (nats) | "
    "straightness | train s |\n|---|---|---|---|---|---|---|---|"
)

REFLOW = """
import "stdlib/rectified_flow.gen"
model reflow extends rectified_flow {
  couple x0, x1 by reflow
}
"""


def measure(
    model: MatchingModel, test: torch.Tensor, *, nll_n: int, seed: int
) -> tuple[str, str, str, str]:
    """W2 with the declared sampler (and its NFE), W2 with 20 Euler steps, NLL, straightness."""
    model.eval()
    n = len(test)
    g = torch.Generator().manual_seed(seed)
    declared = w2(model.sample(n, generator=g), test)
    nfe = model.last_nfe
    euler = w2(model.sample(n, method="euler", steps=20, generator=g), test)
    nll = -float(model.log_prob(test[:nll_n]).mean())
    s = model.straightness(1000, steps=100, generator=g)
    return f"{declared:.4f} ({nfe})", f"{euler:.4f}", f"{nll:.3f}", f"{s:.4f}"


def train(model: MatchingModel, data: torch.Tensor, args: argparse.Namespace) -> float:
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as out:
        fit(
            model,
            data,
            steps=args.steps,
            batch_size=args.batch,
            lr=args.lr,
            out_dir=out,
            seed=args.seed,
            ema=None,
            progress=False,
            log_every=args.steps,
            checkpoint_every=args.steps,
        )
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--specs", default=SPECS)
    parser.add_argument("--data", default="moons,8gaussians")
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--hidden", default="128,128,128", help="MLP widths ('' = the spec's)")
    parser.add_argument("--n", type=int, default=2000, help="samples and held-out points")
    parser.add_argument("--nll-n", type=int, default=500)
    parser.add_argument("--no-reflow", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(f"command: python benchmarks/matching_2d.py {' '.join(sys.argv[1:])}".rstrip())
    print(f"steps {args.steps}, batch {args.batch}, lr {args.lr}, MLP hidden [{args.hidden}]\n")
    print(HEAD, flush=True)
    net = f"\n  net v = MLP(hidden = [{args.hidden}], time = concat)" if args.hidden else ""
    for data_name in args.data.split(","):
        train_x = load_dataset(data_name, split="train", seed=args.seed, n=20000).x.float()
        test = load_dataset(data_name, split="test", seed=args.seed, n=args.n).x.float()
        rectified = None
        for spec_name in args.specs.split(","):
            text = f'import "stdlib/{spec_name}.gen"\nmodel bench extends {spec_name} {{{net}\n}}'
            torch.manual_seed(args.seed)
            model = load(text if net else str(stdlib_dir() / f"{spec_name}.gen"), D=2)
            untrained = w2(model.sample(args.n, generator=torch.Generator().manual_seed(1)), test)
            seconds = train(model, train_x, args)
            cells = measure(model, test, nll_n=args.nll_n, seed=args.seed)
            print(f"| {spec_name} | {data_name} | {untrained:.4f} | {' | '.join(cells)} | "
                  f"{seconds:.0f} |", flush=True)  # fmt: skip
            if spec_name == "rectified_flow":
                rectified = model
        if rectified is not None and not args.no_reflow:
            torch.manual_seed(args.seed)
            model = load(REFLOW.replace("{", "{" + net, 1) if net else REFLOW, D=2)
            model.set_previous(rectified)
            untrained = w2(model.sample(args.n, generator=torch.Generator().manual_seed(1)), test)
            seconds = train(model, train_x, args)
            cells = measure(model, test, nll_n=args.nll_n, seed=args.seed)
            print(f"| rectified_flow + reflow | {data_name} | {untrained:.4f} | "
                  f"{' | '.join(cells)} | {seconds:.0f} |", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
