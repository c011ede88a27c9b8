"""Glow with learned priors against the fixed N(0, 1) prior: held-out bits/dim, same steps.

Each data set's multi-scale Glow is trained twice per seed from the same initialisation (the
zero-initialised priors draw nothing, so at step 0 the two models are the same function):
``split`` (the factored-out half goes to N(0, 1), Dinh et al. 2017) and ``split(prior =
learned)`` + ``learntop`` (Kingma & Dhariwal 2018).  Runs are interleaved (fixed, learned,
then learned, fixed on the next seed) so machine load falls on both alike.  Bits/dim is the
dequantised bound on the test split with one fixed uniform draw (Theis et al. 2016).

    OMP_NUM_THREADS=1 python benchmarks/glow_prior.py                      # 8x8 digits
    OMP_NUM_THREADS=1 python benchmarks/glow_prior.py --data fontdigits --steps 300 --n 1000
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

from gendsl.data import as_float, load_dataset
from gendsl.lower import load
from gendsl.train import fit

ROOT = Path(__file__).resolve().parents[1]
STEP = (
    "actnorm; invconv(lu = true); affine_coupling(mask = half, "
    "net = ConvNet(channels = [{w}, {w}], activation = relu, zero_out = true))"
)
DIGITS = """model glow8 {{
  data x : image[1, 8, 8]
  latent z : real[64]
  z ~ Normal(0, 1)
  flow f {{
    squeeze
    repeat 4 {{ {step} }}
    split
    squeeze
    repeat 4 {{ {step} }}
  }}
  x = f(z)
  loss nll
}}""".format(step=STEP.format(w=32))


def spec_text(data: str) -> str:
    """The fixed-prior spec: a two-level Glow for the 8x8 digits, or the fontdigits example."""
    if data == "fontdigits":
        return (ROOT / "examples" / "glow_fontdigits.gen").read_text()
    return DIGITS


def learned(spec: str) -> str:
    """The same spec with Glow's learned priors: ``split(prior = learned)`` and ``learntop``
    as the flow's last layer."""
    lines = spec.splitlines()
    out = [
        ln.replace("split", "split(prior = learned)") if ln.strip() == "split" else ln
        for ln in lines
    ]
    end = next(i for i, ln in enumerate(out) if ln.strip() == "x = f(z)") - 1
    indent = out[end - 1][: len(out[end - 1]) - len(out[end - 1].lstrip())]
    return "\n".join([*out[:end], f"{indent}learntop", *out[end:]])


def run(spec: str, train, test, args, seed: int) -> tuple[float, float, float]:
    """(bits/dim at step 0, bits/dim after ``args.steps``, training seconds)."""
    torch.manual_seed(seed)
    model = load(spec)
    model.levels = args.levels

    def bpd() -> float:
        model.eval()
        g = torch.Generator().manual_seed(0)
        with torch.no_grad():
            out = float(model.bits_per_dim(test, generator=g).mean())
        model.train()
        return out

    model.loss(train[: args.batch])  # actnorm's data-dependent init, as the first step does
    start = bpd()
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as out:
        fit(
            model,
            train,
            steps=args.steps,
            batch_size=args.batch,
            lr=args.lr,
            out_dir=out,
            seed=seed,
            device="cpu",
            ema=None,
            progress=False,
            checkpoint_every=args.steps,
            log_every=args.steps,
        )
    return start, bpd(), time.perf_counter() - t0


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default="digits_image", choices=["digits_image", "fontdigits"])
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--n", type=int, default=None, help="test images scored (default all)")
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
    print(
        "command: python benchmarks/glow_prior.py "
        + " ".join(sys.argv[1:] if argv is None else argv)
    )
    data = load_dataset(args.data, split="train")
    args.levels = data.levels
    train = as_float(data.x)
    test = as_float(load_dataset(args.data, split="test", n=args.n, seed=0).x)
    fixed = spec_text(args.data)
    variants = {"fixed": fixed, "learned": learned(fixed)}
    print(f"{args.data}: {len(train)} train, {len(test)} test images, levels {args.levels}")
    print(
        "| seed | prior | bits/dim at init | bits/dim trained | train s |\n|---|---|---|---|---|"
    )
    results: dict[str, list[float]] = {"fixed": [], "learned": []}
    for seed in range(args.seeds):
        order = ["fixed", "learned"] if seed % 2 == 0 else ["learned", "fixed"]
        for name in order:
            start, end, seconds = run(variants[name], train, test, args, seed)
            results[name].append(end)
            print(f"| {seed} | {name} | {start:.4f} | {end:.4f} | {seconds:.0f} |", flush=True)
    diffs = [a - b for a, b in zip(results["learned"], results["fixed"], strict=True)]
    mean = sum(diffs) / len(diffs)
    sd = math.sqrt(sum((d - mean) ** 2 for d in diffs) / max(1, len(diffs) - 1))
    print(
        f"\nlearned - fixed bits/dim after {args.steps} steps, per seed: "
        + ", ".join(f"{d:+.4f}" for d in diffs)
        + f"; mean {mean:+.4f} (sd {sd:.4f}, {len(diffs)} seeds)"
    )


if __name__ == "__main__":
    main()
