"""The VP SDE on the 8x8 digits: digits-FD per sampler and the PF-ODE likelihood in bits/dim,
for an MLP and a small UNet noise predictor.

The stdlib ``vp_sde`` spec (MLP) is trained on the flat digits (``real[64]``, intensities k/16 in
[0, 1]) and ``examples/vp_sde_digits_unet.gen`` (UNet, channels 32 and 64) on the same digits as
``image[1, 8, 8]``, each with :func:`gendsl.train.fit`; each net's table is printed as soon as
it is measured.  Samples (clipped to [0, 1]) are scored by digits-FD
against the test split; the likelihood is the PF-ODE bound on the 17-level quantised test
digits, dequantised uniformly (Theis et al. 2016), with Hutchinson's trace estimator.

    python benchmarks/diffusion_digits.py                 # defaults: a few minutes on 2 cores
    python benchmarks/diffusion_digits.py --steps 20000 --unet-steps 5000
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

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

#: The UNet's samplers: a UNet evaluation costs ~20 MLP ones on a CPU, so the few-step ones.
UNET_SAMPLERS = (
    ("ddim", 50, {}),
    ("dpm_solver", 20, {"order": 2}),
    ("dpm_solver", 10, {"order": 2}),
)

#: Intensity levels of the digits (0..16).
LEVELS = 17

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


#: (name, spec file, data set, sizes) of the networks compared.
NETS = {
    "mlp": (stdlib_dir() / "vp_sde.gen", "digits", {"D": 64}),
    "unet": (EXAMPLES / "vp_sde_digits_unet.gen", "digits_image", {}),
}


def run_net(
    name: str,
    steps: int,
    batch: int,
    samplers: tuple,
    n: int,
    nll_points: int,
    args: argparse.Namespace,
) -> None:
    """Train one network, then print its sampler table and likelihood as they are measured."""
    spec, data_name, sizes = NETS[name]
    train = load_dataset(data_name, split="train").x
    test = load_dataset(data_name, split="test").x
    torch.manual_seed(args.seed)
    model = load(str(spec), **sizes)
    params = sum(p.numel() for p in model.parameters())
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as out:
        result = fit(
            model,
            train,
            steps=steps,
            batch_size=batch,
            lr=args.lr,
            out_dir=out,
            seed=args.seed,
            device=args.device,
            ema=args.ema,
            progress=False,
            checkpoint_every=steps,
        )
    result.ema.copy_to(model)
    model.eval()
    print(
        f"### {name}: {spec.name} on {data_name}, {params} parameters, {steps} steps of batch "
        f"{batch}: trained in {time.perf_counter() - t0:.0f} s, final loss {result.loss:.3f}\n"
    )
    gen = torch.Generator(device=result.device)
    print(f"| net | sampler | steps | NFE | digits-FD ({n} samples vs test) | seconds |")
    print("|---|---|---|---|---|---|", flush=True)
    for method, sampler_steps, knobs in samplers:
        gen.manual_seed(args.seed)
        t1 = time.perf_counter()
        x = model.sample(n, method=method, steps=sampler_steps, generator=gen, **knobs)
        fd = digits_fd(x.reshape(n, 64).clamp(0, 1).cpu(), reference="test")
        print(
            f"| {name} | {method} | {sampler_steps or 'adaptive'} | {model.last_nfe} | {fd:.2f} | "
            f"{time.perf_counter() - t1:.0f} |",
            flush=True,
        )
    t2 = time.perf_counter()
    points = test[:nll_points].to(result.device)
    gen.manual_seed(args.seed)
    bpd = model.bits_per_dim(points, dequantize=LEVELS, rtol=1e-4, atol=1e-4, generator=gen)
    print(
        f"\n{name}: PF-ODE NLL of {len(points)} test digits, {LEVELS}-level uniform "
        f"dequantisation, Hutchinson trace, dopri5 (rtol = atol = 1e-4): "
        f"{bpd.mean().item():.3f} bits/dim ({time.perf_counter() - t2:.0f} s)\n",
        flush=True,
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nets", default="mlp,unet")
    parser.add_argument("--steps", type=int, default=4000, help="MLP training steps")
    parser.add_argument("--batch", type=int, default=128, help="MLP batch")
    parser.add_argument("--unet-steps", type=int, default=800, help="UNet training steps")
    parser.add_argument("--unet-batch", type=int, default=64)
    parser.add_argument("--unet-n", type=int, default=500, help="UNet samples per sampler")
    parser.add_argument("--unet-nll-points", type=int, default=100)
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
    print(f"torch threads: {args.threads}\n")
    reference = digits_fd(load_dataset("digits", split="train").x[: args.n], reference="test")
    print(f"digits-FD of {args.n} train digits vs test (the floor): {reference:.2f}\n", flush=True)
    for name in args.nets.split(","):
        if name == "unet":
            run_net(
                name,
                args.unet_steps,
                args.unet_batch,
                UNET_SAMPLERS,
                args.unet_n,
                args.unet_nll_points,
                args,
            )
        else:
            run_net(name, args.steps, args.batch, SAMPLERS, args.n, args.nll_points, args)


if __name__ == "__main__":
    main()
