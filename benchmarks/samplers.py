"""Accuracy vs NFE of every sampler and schedule on the exact score of a narrow-mode 2-D mixture.

    python benchmarks/samplers.py --n 2000 --nfe 5 10 20 50

Prints a Markdown table: within-mode std ratio, max mode-weight error, W2 to fresh data, and the
ratio of that W2 to the W2 of the same sampler run for 1000 steps (same prior noise).
"""

from __future__ import annotations

import argparse

import ot
import torch

from gendsl.processes import VPSDE, GaussianMixture
from gendsl.sampling import sample, t_of_sigma

CONFIGS: list[tuple[str, str, dict, int]] = [
    # (label, method, knobs, NFE per step; the final Tweedie step costs 1)
    ("ddim", "ddim", {}, 1),
    ("ode euler", "ode", {"solver": "euler"}, 1),
    ("ode heun", "ode", {"solver": "heun"}, 2),
    ("dpm++ 2M", "dpm_solver", {"order": 2}, 1),
    ("dpm++ 3M", "dpm_solver", {"order": 3}, 1),
    ("dpm 2M (noise)", "dpm_solver", {"order": 2, "predict": "noise"}, 1),
    ("dpm++ 2S", "dpm_solver", {"order": 2, "multistep": False}, 2),
    ("dpm++ 3S", "dpm_solver", {"order": 3, "multistep": False}, 3),
    ("ancestral", "ancestral", {}, 1),
    ("euler_maruyama", "euler_maruyama", {}, 1),
    ("pc", "pc", {}, 2),
]
SCHEDULE_NAMES = ("uniform_t", "uniform_log_snr", "karras")


def mixture(tau: float) -> GaussianMixture:
    angles = torch.arange(8, dtype=torch.float64) * torch.pi / 4
    means = 2 * torch.stack([angles.cos(), angles.sin()], 1)
    return GaussianMixture(means, tau, torch.linspace(1, 2, 8, dtype=torch.float64))


def w2(x: torch.Tensor, y: torch.Tensor) -> float:
    """Exact W2 between two point clouds (POT's network simplex)."""
    a = torch.full((x.shape[0],), 1 / x.shape[0], dtype=torch.float64)
    b = torch.full((y.shape[0],), 1 / y.shape[0], dtype=torch.float64)
    return float(ot.emd2(a, b, ot.dist(x, y), numItermax=10**7)) ** 0.5


def mode_stats(mix: GaussianMixture, x: torch.Tensor, tau: float) -> tuple[float, float]:
    labels = mix.responsibilities(x).argmax(1)
    m = mix.means.shape[0]
    ratios = [
        ((x[labels == k] - mix.means[k]).pow(2).mean().sqrt() / tau).item() for k in range(m)
    ]
    weights = torch.bincount(labels, minlength=m).double() / x.shape[0]
    return sum(ratios) / m, (weights - mix.weights).abs().max().item()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000, help="samples per run")
    parser.add_argument("--nfe", type=int, nargs="+", default=[5, 10, 20, 50])
    parser.add_argument("--tau", type=float, default=0.05, help="std of every mode")
    parser.add_argument("--sigma-end", type=float, default=0.002, help="σ = s/a before Tweedie")
    parser.add_argument("--ref-steps", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--methods", nargs="*", default=None, help="labels to run (default all)")
    args = parser.parse_args()
    torch.set_num_threads(1)

    process = VPSDE()
    mix = mixture(args.tau)
    score_fn = mix.score_fn(process)
    t_end = t_of_sigma(process, torch.tensor(args.sigma_end, dtype=torch.float64)).item()
    data = mix.sample(args.n, generator=torch.Generator().manual_seed(10_000 + args.seed))
    floor = w2(data, mix.sample(args.n, generator=torch.Generator().manual_seed(20_000)))
    print(
        f"VP SDE, 8-mode mixture (radius 2, mode std {args.tau}), n = {args.n}, "
        f"t_end = {t_end:.3g} (σ = {args.sigma_end}), W2 between two exact samples = {floor:.4f}\n"
    )
    header = (
        "| sampler | schedule | NFE | std ratio | weight err | W2 data | W2/W2(ref) | W2 to ref |"
    )
    print(header)
    print("|---|---|---|---|---|---|---|---|")

    def run(method, knobs, steps, schedule):
        return sample(
            process,
            score_fn,
            (args.n, 2),
            method=method,
            steps=steps,
            schedule=schedule,
            t_end=t_end,
            generator=torch.Generator().manual_seed(args.seed),
            dtype=torch.float64,
            **knobs,
        )

    for label, method, knobs, per_step in CONFIGS:
        if args.methods and label not in args.methods:
            continue
        ref = run(method, knobs, args.ref_steps, "uniform_log_snr").x
        w2_ref = w2(ref, data)
        for schedule in SCHEDULE_NAMES:
            for nfe in args.nfe:
                steps = max(2, (nfe - 1) // per_step + 1)
                out = run(method, knobs, steps, schedule)
                ratio, werr = mode_stats(mix, out.x, args.tau)
                w2_data = w2(out.x, data)
                print(
                    f"| {label} | {schedule} | {out.nfe} | {ratio:.3f} | {werr:.3f} | "
                    f"{w2_data:.4f} | {w2_data / w2_ref:.3f} | {w2(out.x, ref):.4f} |",
                    flush=True,
                )


if __name__ == "__main__":
    main()
