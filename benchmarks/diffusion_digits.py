"""The VP SDE on the 8x8 digits: digits-FD per sampler and the PF-ODE likelihood in bits/dim.

The stdlib ``vp_sde`` spec is trained on the flat digits (``real[64]``, intensities k/16 in
[0, 1]) with :func:`gendsl.train.fit`.  Samples (clipped to [0, 1]) are scored by digits-FD
against the test split; the likelihood is the PF-ODE bound on the 17-level quantised test
digits, dequantised uniformly (Theis et al. 2016), with Hutchinson's trace estimator.

    python benchmarks/diffusion_digits.py                 # defaults: a few minutes on 2 cores
    python benchmarks/diffusion_digits.py --steps 20000
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time

import torch

from gendsl.data import load_dataset
from gendsl.lower import load
from gendsl.metrics import digits_fd
from gendsl.resources import stdlib_dir
from gendsl.train import fit

#: (sampler, steps, knobs); NFE is measured.
SAMPLERS = (
    ("ancestral", 100, {}),
    ("pc", 50, {}),
    ("ddim", 50, {}),
    ("dpm_solver", 20, {"order": 2}),
    ("dpm_solver", 10, {"order": 2}),
    ("ode", None, {"solver": "dopri5", "rtol": 1e-3, "atol": 1e-3}),
)

#: Intensity levels of the digits (0..16).
LEVELS = 17


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=4000, help="training steps")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--ema", type=float, default=0.995)
    parser.add_argument("--n", type=int, default=1000, help="samples per sampler")
    parser.add_argument("--nll-points", type=int, default=300)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    given = " ".join(sys.argv[1:] if argv is None else argv)
    print(f"command: python benchmarks/diffusion_digits.py {given}")
    print(f"torch threads: {args.threads}; training steps {args.steps}, batch {args.batch}\n")
    train = load_dataset("digits", split="train").x
    test = load_dataset("digits", split="test").x
    torch.manual_seed(args.seed)
    model = load(str(stdlib_dir() / "vp_sde.gen"), D=64)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as out:
        result = fit(
            model,
            train,
            steps=args.steps,
            batch_size=args.batch,
            lr=args.lr,
            out_dir=out,
            seed=args.seed,
            device=args.device,
            ema=args.ema,
            progress=False,
            checkpoint_every=args.steps,
        )
    result.ema.copy_to(model)
    model.eval()
    print(f"trained in {time.perf_counter() - t0:.0f} s, final loss {result.loss:.3f}\n")
    gen = torch.Generator(device=result.device)
    print(f"| sampler | steps | NFE | digits-FD ({args.n} samples vs test) | seconds |")
    print("|---|---|---|---|---|")
    for method, steps, knobs in SAMPLERS:
        gen.manual_seed(args.seed)
        t1 = time.perf_counter()
        x = model.sample(args.n, method=method, steps=steps, generator=gen, **knobs)
        fd = digits_fd(x.clamp(0, 1).cpu(), reference="test")
        print(
            f"| {method} | {steps or 'adaptive'} | {model.last_nfe} | {fd:.2f} | "
            f"{time.perf_counter() - t1:.0f} |"
        )
    reference = digits_fd(load_dataset("digits", split="train").x[: args.n], reference="test")
    print(f"| (train digits) | | | {reference:.2f} | |")
    t2 = time.perf_counter()
    points = test[: args.nll_points].to(result.device)
    gen.manual_seed(args.seed)
    bpd = model.bits_per_dim(points, dequantize=LEVELS, rtol=1e-4, atol=1e-4, generator=gen)
    print(
        f"\nPF-ODE NLL of {len(points)} test digits, {LEVELS}-level uniform dequantisation, "
        f"Hutchinson trace, dopri5 (rtol = atol = 1e-4): {bpd.mean().item():.3f} bits/dim "
        f"({time.perf_counter() - t2:.0f} s)"
    )


if __name__ == "__main__":
    main()
