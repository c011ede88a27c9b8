"""fontdigits-FD, -IS and precision/recall of a trained run's samples, drawn as
``benchmarks/images.py`` draws them (``--n`` samples in batches of 250 from one generator seeded
``--seed``, scored against the same ``--n`` test images), one sampler per argument, with a grid
PNG of each.  For runs trained with ``gendsl train`` (longer than the benchmark's budget, or a
spec variant):

    OMP_NUM_THREADS=2 python benchmarks/sample_quality.py runs/vp_sde_2400 dpm_solver:20
    OMP_NUM_THREADS=2 python benchmarks/sample_quality.py runs/vp --clip false dpm_solver:20

A sampler is ``METHOD:STEPS``; ``--clip true|false`` sets a diffusion sampler's ``clip``
option (default: the spec's, on for image data).  A label-conditioned run draws the digits
0, 1, ..., 9, 0, ... and gets a class-agreement column (as ``images.py``).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from images import class_agreement, sample_quality, save_grid

from gendsl.data import load_dataset
from gendsl.data.dataset import as_float
from gendsl.lower.trained import compile_run
from gendsl.trained import open_trained


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", help="a run directory or checkpoint")
    parser.add_argument("samplers", nargs="+", help="METHOD:STEPS, e.g. dpm_solver:20")
    parser.add_argument("--n", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sample-batch", type=int, default=250)
    parser.add_argument("--clip", choices=("true", "false"), default=None)
    parser.add_argument("--out", type=Path, default=Path("runs/bench_sample_quality"))
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
    args.out.mkdir(parents=True, exist_ok=True)
    model = compile_run(open_trained(args.run))
    test = as_float(load_dataset("fontdigits", split="test", n=args.n, seed=args.seed).x)
    opts = {} if args.clip is None else {"clip": args.clip == "true"}
    print(f"{args.run}: {args.n} samples against {args.n} fontdigits test images")
    labels = torch.arange(args.n) % 10 if model.checked.condition_vars() else None
    print("| sampler | sample s | FD | IS | prec | recall | class agreement |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for spec in args.samplers:
        method, _, steps = spec.partition(":")
        g = torch.Generator().manual_seed(args.seed)
        t0 = time.perf_counter()
        with torch.no_grad():
            chunks = [
                model.sample(
                    min(args.sample_batch, args.n - start),
                    method=method,
                    steps=int(steps) if steps else None,
                    generator=g,
                    **opts,
                    **({} if labels is None else {"y": labels[start : start + args.sample_batch]}),
                )
                for start in range(0, args.n, args.sample_batch)
            ]
        samples = torch.cat(chunks)
        seconds = time.perf_counter() - t0
        save_grid(samples, args.out / f"{method}_{steps or 'default'}.png")
        agree = "-" if labels is None else class_agreement(samples, labels)
        row = [spec, f"{seconds:.0f}", *sample_quality(samples, test), agree]
        print("| " + " | ".join(row) + " |", flush=True)


if __name__ == "__main__":
    main()
