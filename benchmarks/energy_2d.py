"""Energy-based models on 2-D toy data: W2 of Langevin samples before and after training.

Each stdlib spec (ebm: persistent contrastive divergence; dsm; ssm) is trained with
:func:`gendsl.train.fit` (Adam, the spec's lr unless ``--lr``) on each data set; then 2000
samples are drawn from uniform noise on [-3, 3]² by the spec's ``sample with langevin(...)``
and compared with 2000 held-out points by the exact W2 distance (POT).  Two samplers: the
spec's (noise 0.005, i.e. temperature T = noise²/(2 step) ≈ 0.001: nearly gradient descent
on E) and T = 1 (noise √(2 step), the textbook unadjusted Langevin sampler of exp(-E)).  NFE
counts energy-gradient evaluations.  The normaliser is unknown, so there is no NLL column.

    python benchmarks/energy_2d.py                      # defaults: a few minutes on 2 cores
    python benchmarks/energy_2d.py --specs dsm,ssm --steps 5000 --lr 1e-3
"""

from __future__ import annotations

import argparse
import tempfile
import time

import torch

from gendsl.data import load_dataset
from gendsl.lower import Model, load
from gendsl.metrics import w2
from gendsl.resources import stdlib_dir
from gendsl.train import fit

__all__ = ["main", "sample_w2"]

HEAD = (
    "| spec | data | steps | lr | NFE | W2 untrained | W2 spec sampler | W2 T = 1 | train s |\n"
    "|---|---|---|---|---|---|---|---|---|"
)


def sample_w2(model: Model, test: torch.Tensor, seed: int, **opts: object) -> float:
    """W2 between as many Langevin samples as ``test`` has rows and ``test``."""
    gen = torch.Generator().manual_seed(seed + 1)
    return w2(model.sample(test.shape[0], generator=gen, **opts), test)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--specs", default="ebm,dsm,ssm")
    parser.add_argument("--data", default="moons,8gaussians")
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--lr", type=float, default=1e-3, help="0 keeps the spec's lr")
    parser.add_argument("--n", type=int, default=2000, help="samples and held-out points")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(HEAD, flush=True)
    for data_name in args.data.split(","):
        train = load_dataset(data_name, n=20000, seed=args.seed).x
        test = load_dataset(data_name, n=args.n, seed=args.seed, split="test").x
        for spec in args.specs.split(","):
            torch.manual_seed(args.seed)
            model = load(stdlib_dir() / f"{spec}.gen", D=2)
            lr = args.lr or model.checked.train.get("lr", 1e-3)
            before = sample_w2(model, test, args.seed)
            start = time.perf_counter()
            with tempfile.TemporaryDirectory() as out:
                fit(
                    model,
                    train,
                    steps=args.steps,
                    batch_size=args.batch,
                    lr=lr,
                    optimizer="adam",
                    out_dir=out,
                    seed=args.seed,
                    ema=None,
                    grad_clip=None,
                    progress=False,
                    checkpoint_every=args.steps,
                    eval_every=args.steps,
                    log_every=args.steps,
                )
            elapsed = time.perf_counter() - start
            spec_w2 = sample_w2(model, test, args.seed)
            unit_w2 = sample_w2(model, test, args.seed, noise=None)
            nfe = model.sampler["steps"]
            print(
                f"| {spec} | {data_name} | {args.steps} | {lr:g} | {nfe} | {before:.3f} | "
                f"{spec_w2:.3f} | {unit_w2:.3f} | {elapsed:.0f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
