"""Forward against reverse KL: one Gaussian fitted to a bimodal target both ways (a figure and a
table for teaching mode covering against mode seeking; see ``docs/experiments.md``).

    OMP_NUM_THREADS=1 python examples/kl_directions.py --plot docs/experiments/kl_directions.png

The fits and the divergences are :mod:`gendsl.metrics.kl_fit`'s.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch
from torch.distributions import Normal

from gendsl.metrics.kl_fit import bimodal, fit_gaussian, kl_on_grid, moment_match


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--separation", type=float, default=2.0, help="modes at ± this")
    parser.add_argument("--std", type=float, default=0.5, help="each mode's standard deviation")
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--plot", type=Path, help="write the figure (.png)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    p = bimodal(args.separation, args.std)
    grid = torch.linspace(-10 * args.separation, 10 * args.separation, 40001, dtype=torch.float64)
    fits = {}
    for direction in ("forward", "reverse"):
        gen = torch.Generator().manual_seed(args.seed)
        fits[direction] = fit_gaussian(p, direction=direction, steps=args.steps, generator=gen)
    mu, sigma = moment_match(p)
    print(
        f"target: ½ N(±{args.separation:g}, {args.std:g}²); moment match μ = {mu:.4g}, "
        f"σ = {sigma:.4g}"
    )
    print("| fit | μ | σ | KL(p‖q) | KL(q‖p) |")
    print("|---|---:|---:|---:|---:|")
    for direction, (m, s) in fits.items():
        q = Normal(torch.tensor(m, dtype=torch.float64), torch.tensor(s, dtype=torch.float64))
        name = "forward KL(p‖q)" if direction == "forward" else "reverse KL(q‖p)"
        print(
            f"| {name} | {m:.4f} | {s:.4f} | {kl_on_grid(p, q, grid):.4f} | "
            f"{kl_on_grid(q, p, grid):.4f} |"
        )
    if args.plot:
        _plot(p, fits, args.plot, 3 * args.separation)
    return 0


def _plot(p, fits, path: Path, half_width: float) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = torch.linspace(-half_width, half_width, 600, dtype=torch.float64)
    fig, ax = plt.subplots(figsize=(6, 3))
    ax.fill_between(x, p.log_prob(x).exp(), color="lightgray", label="target p")
    styles = {
        "forward": ("tab:blue", "min KL(p‖q): mode covering"),
        "reverse": ("tab:red", "min KL(q‖p): mode seeking"),
    }
    for direction, (m, s) in fits.items():
        q = Normal(torch.tensor(m, dtype=torch.float64), torch.tensor(s, dtype=torch.float64))
        color, label = styles[direction]
        ax.plot(x, q.log_prob(x).exp(), color=color, label=label)
    ax.set_xlabel("x")
    ax.set_ylabel("density")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


if __name__ == "__main__":
    raise SystemExit(main())
