"""Normalizing flows on 2-D toy data: exact likelihood and sample quality.

Each stdlib flow spec (realnvp, glow, ffjord) is trained with :func:`gendsl.train.fit` on each
data set (moons, 8gaussians); then 2000 samples are compared with 2000 held-out points by the
exact W2 distance (POT), the exact negative log-likelihood (change of variables; for FFJORD the
exact divergence through dopri5) is averaged over the same held-out points, and for FFJORD the
number of velocity evaluations of the sampling solve is reported.  The untrained model's W2 is
shown for reference.

    python benchmarks/flow_2d.py                 # defaults: a few minutes on 2 cores
    python benchmarks/flow_2d.py --steps 3000 --cnf-steps 1000 --specs realnvp,ffjord
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time

import torch

from gendsl.data import load_dataset
from gendsl.lower import load
from gendsl.metrics import w2
from gendsl.resources import stdlib_dir
from gendsl.train import fit

HEAD = (
    "| spec | data | steps | W2 untrained | W2 trained | NLL (nats) | bits/dim | NFE "
    "(sampling) | train s |\n|---|---|---|---|---|---|---|---|---|"
)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--specs", default="realnvp,glow,ffjord")
    parser.add_argument("--data", default="moons,8gaussians")
    parser.add_argument("--steps", type=int, default=1500, help="steps of the discrete flows")
    parser.add_argument("--cnf-steps", type=int, default=300, help="steps of FFJORD")
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--n", type=int, default=2000, help="samples and held-out points")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    print(
        "command: python benchmarks/flow_2d.py " + " ".join(sys.argv[1:] if argv is None else argv)
    )
    print(HEAD, flush=True)
    for data_name in args.data.split(","):
        train = load_dataset(data_name, n=20_000, seed=args.seed).x
        test = load_dataset(data_name, n=args.n, seed=args.seed, split="test").x
        for spec in args.specs.split(","):
            torch.manual_seed(args.seed)
            model = load(stdlib_dir() / f"{spec}.gen", D=2)
            is_cnf = model.last_nfe is not None
            steps = args.cnf_steps if is_cnf else args.steps
            gen = torch.Generator().manual_seed(args.seed)
            before = w2(model.sample(args.n, generator=gen), test)
            with tempfile.TemporaryDirectory() as out:
                t0 = time.perf_counter()
                fit(
                    model,
                    train,
                    steps=steps,
                    batch_size=args.batch,
                    lr=args.lr,
                    out_dir=out,
                    seed=args.seed,
                    device="cpu",
                    ema=None,
                    progress=False,
                    checkpoint_every=steps,
                    log_every=steps,
                )
                seconds = time.perf_counter() - t0
            model.eval()
            gen = torch.Generator().manual_seed(args.seed)
            samples = model.sample(args.n, generator=gen)
            nfe = model.last_nfe
            after = w2(samples, test)
            with torch.no_grad():
                nll = -float(model.log_prob(test).mean())
            print(
                f"| {spec} | {data_name} | {steps} | {before:.3f} | {after:.3f} | {nll:.3f} | "
                f"{nll / (2 * math.log(2)):.3f} | {'-' if nfe is None else nfe} | "
                f"{seconds:.0f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
