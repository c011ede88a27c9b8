"""Diffusion models on 2-D toy data: sample quality (W2) against network evaluations per
sampler, and the PF-ODE likelihood.

Each stdlib spec (vp_sde, ddpm, ve_sde, subvp_sde by default) is trained with
:func:`gendsl.train.fit` on each data set; then, for every sampler and NFE in (10, 20, 50, 100),
2000 samples are compared with 2000 held-out points by the exact W2 distance (POT), and the
PF-ODE negative log-likelihood (exact trace, dopri5) is measured on 500 held-out points.

Each model's tables are printed as soon as they are measured, and the NLL rows again at the end.

    python benchmarks/diffusion_2d.py                     # defaults: a few minutes on 2 cores
    python benchmarks/diffusion_2d.py --steps 10000 \
        --samplers ancestral,euler_maruyama,pc,ddim,dpm_solver,ode
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time

import torch

from gendsl import sampler_registry
from gendsl.data import load_dataset
from gendsl.lower import load
from gendsl.metrics import w2
from gendsl.resources import stdlib_dir
from gendsl.train import fit

NFES = (10, 20, 50, 100)

W2_HEAD = (
    "W2 (exact, POT) of samples vs held-out data, lower is better; (n): actual NFE\n\n"
    "| spec | data | sampler | "
    + " | ".join(f"W2 @ NFE {n}" for n in NFES)
    + " |\n|"
    + "---|" * (3 + len(NFES))
)
NLL_HEAD = (
    "PF-ODE negative log-likelihood on held-out data (exact trace, dopri5, float64 state)\n\n"
    "| spec | data | NLL (nats) | bits/dim | final train loss | train s | NLL s |\n"
    "|---|---|---|---|---|---|---|"
)


def steps_for(method: str, nfe: int) -> int:
    """Sampler steps spending about ``nfe`` network evaluations, as the sampler registry counts
    them (pc: predictor + corrector per step plus the final denoising step, so an odd count;
    the table shows the actual one)."""
    decl = sampler_registry.declared("diffusion", method)
    steps = sampler_registry.steps_for_nfe(decl, nfe, sampler_knobs(method))
    return nfe if steps is None else steps


def sampler_knobs(method: str) -> dict[str, object]:
    """Fixed-step settings so that NFE is what the table says (ode: Euler on the PF-ODE)."""
    return {"ode": {"solver": "euler"}, "dpm_solver": {"order": 2}}.get(method, {})


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--specs", default="vp_sde,ddpm,ve_sde,subvp_sde")
    parser.add_argument("--data", default="moons,8gaussians")
    parser.add_argument("--samplers", default="ancestral,pc,ddim,dpm_solver,unipc")
    parser.add_argument(
        "--schedule", default=None, help="time steps for every sampler (default: each its own)"
    )
    parser.add_argument("--steps", type=int, default=3000, help="training steps")
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--ema", type=float, default=0.99)
    parser.add_argument("--n", type=int, default=2000, help="samples and held-out points for W2")
    parser.add_argument("--nll-points", type=int, default=500)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    given = " ".join(sys.argv[1:] if argv is None else argv)
    print(f"command: python benchmarks/diffusion_2d.py {given}")
    print(f"torch threads: {args.threads}; training steps {args.steps}, batch {args.batch}\n")
    samplers = args.samplers.split(",")
    nll_rows = []
    for data_name in args.data.split(","):
        train = load_dataset(data_name, n=20000, seed=args.seed).x
        test = load_dataset(data_name, n=args.n, seed=args.seed, split="test").x
        for spec in args.specs.split(","):
            torch.manual_seed(args.seed)
            model = load(str(stdlib_dir() / f"{spec}.gen"), D=2)
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
            train_s = time.perf_counter() - t0
            ref = test.to(result.device)
            print(
                f"### {spec} on {data_name}: trained in {train_s:.0f} s, "
                f"final loss {result.loss:.4f}\n"
            )
            print(W2_HEAD, flush=True)
            gen = torch.Generator(device=result.device)
            for method in samplers:
                cells = []
                for nfe in NFES:
                    gen.manual_seed(args.seed)
                    x = model.sample(
                        args.n,
                        method=method,
                        steps=steps_for(method, nfe),
                        generator=gen,
                        **sampler_knobs(method),
                        **({"schedule": args.schedule} if args.schedule else {}),
                    )
                    shown = "" if model.last_nfe == nfe else f" ({model.last_nfe})"
                    cells.append(f"{w2(x.cpu(), ref.cpu()):.3f}{shown}")
                row = f"| {spec} | {data_name} | {method} | " + " | ".join(cells) + " |"
                print(row, flush=True)
            t1 = time.perf_counter()
            nll = -model.log_prob(ref[: args.nll_points], trace="exact").mean().item()
            nll_rows.append(
                f"| {spec} | {data_name} | {nll:.3f} | {nll / (2 * math.log(2)):.3f} | "
                f"{result.loss:.4f} | {train_s:.0f} | {time.perf_counter() - t1:.0f} |"
            )
            print(f"\n{NLL_HEAD}\n{nll_rows[-1]}\n", flush=True)
    print(f"## PF-ODE NLL, all runs\n\n{NLL_HEAD}")
    print("\n".join(nll_rows))


if __name__ == "__main__":
    main()
