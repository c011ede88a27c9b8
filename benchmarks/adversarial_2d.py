"""Adversarial models on 2-D toy data: W2 of generated samples before and after training.

Each stdlib spec (gan, wgan, wgan_gp, dragan, sngan by default) is trained with
:func:`gendsl.train.fit` using its own ``train { }`` optimiser (Adam with the spec's lr and
betas, ``critic_steps`` critic updates per step) on each data set; then 2000 samples are compared
with 2000 held-out points by the exact W2 distance (POT).  GANs have no likelihood, so there is
no NLL column; sampling is one generator pass (NFE 1).  The trained weights themselves are
evaluated (``ema=None``; no gradient clipping, as in the WGAN papers).  The ``critic_gap`` column
is E D(x) - E D(G(z)) on the held-out points after training: for wgan / wgan_gp / dragan an
estimate of W1 up to the critic's Lipschitz constant, near 0 once the generator has caught up.

    python benchmarks/adversarial_2d.py                 # defaults: a few minutes on 2 cores
    python benchmarks/adversarial_2d.py --steps 5000 --specs wgan_gp --data 25gaussians
"""

from __future__ import annotations

import argparse
import tempfile
import time

import torch

from gendsl.data import load_dataset
from gendsl.ir import Opt
from gendsl.lower import Model, load
from gendsl.metrics import w2
from gendsl.resources import stdlib_dir
from gendsl.train import fit

__all__ = ["fit_settings", "main"]

HEAD = (
    "| spec | data | steps | W2 untrained | W2 trained | critic_gap | train s |\n"
    "|---|---|---|---|---|---|---|"
)


def fit_settings(model: Model, lr: float | None) -> dict[str, object]:
    """``fit`` keywords from the spec's ``train { }`` (optimizer, lr, betas), lr overridable."""
    train = model.checked.train
    opt = train.get("optimizer")
    out: dict[str, object] = {"optimizer": "adam", "lr": train.get("lr", 1e-3)}
    if isinstance(opt, Opt):
        out["optimizer"] = opt.name
        if opt.kwargs.get("lr") is not None:
            out["lr"] = opt.kwargs["lr"]
        if opt.kwargs.get("betas") is not None:
            out["betas"] = tuple(opt.kwargs["betas"])
    if lr is not None:
        out["lr"] = lr
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--specs", default="gan,wgan,wgan_gp,dragan,sngan")
    parser.add_argument("--data", default="moons,8gaussians")
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--lr", type=float, default=None, help="override the spec's lr")
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
            gen = torch.Generator().manual_seed(args.seed + 1)
            before = w2(model.sample(args.n, generator=gen), test)
            start = time.perf_counter()
            with tempfile.TemporaryDirectory() as out:
                fit(
                    model,
                    train,
                    steps=args.steps,
                    batch_size=args.batch,
                    out_dir=out,
                    seed=args.seed,
                    ema=None,
                    grad_clip=None,
                    progress=False,
                    checkpoint_every=args.steps,
                    eval_every=args.steps,
                    log_every=args.steps,
                    **fit_settings(model, args.lr),
                )
            elapsed = time.perf_counter() - start
            gen = torch.Generator().manual_seed(args.seed + 1)
            fake = model.sample(args.n, generator=gen)
            after = w2(fake, test)
            with torch.no_grad():
                gap = float(model.critic(test).mean() - model.critic(fake).mean())
            row = f"| {spec} | {data_name} | {args.steps} | {before:.3f} | {after:.3f} |"
            print(f"{row} {gap:.3f} | {elapsed:.0f} |", flush=True)


if __name__ == "__main__":
    main()
