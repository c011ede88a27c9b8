"""Every 28x28 example (``examples/*fontdigits*.gen``) trained on the bundled ``fontdigits`` on
the CPU for a budgeted number of steps: a grid PNG of samples per example and one table.

Columns: training steps and seconds; bits/dim of the dequantised test digits where the family
has an exact likelihood (flows); the ELBO in nats per image (latent family, on the test split);
FD, IS and improved precision/recall (Kynkäänniemi et al. 2019) of ``--n`` samples against
``--n`` test images, and for a label-conditioned model the share of samples the classifier
names as the digit they were drawn for (class agreement; the real row: its accuracy on the
``--n`` test images), with gendsl's fontdigits classifier
(:mod:`gendsl.metrics.fontdigits_metrics`: fontdigits-FD, fontdigits-IS with its standard
error over 10 splits, precision/recall with k = 3).  Like FID, the FD is biased upward at
small ``--n``; the first row, ``--n`` real training images, is what a perfect model scores at
that ``--n``.

The consistency-distillation example is distilled from the v-predicting VP SDE example trained
just before it (its teacher).  Samplers: each spec's own, except DDPM's 1000-step ancestral
chain, which is strided to ``--ddpm-steps``.  ``--jobs 2`` (two worker processes of one thread,
longest examples first, the consistency model with its teacher) runs the default budget
(``STEPS``) in under an hour on 2 cores (README); ``--fraction f`` trains every example f times
its budget and ``--steps N`` N steps (short runs).

    OMP_NUM_THREADS=1 python benchmarks/images.py --jobs 2             # the full budget
    OMP_NUM_THREADS=1 python benchmarks/images.py --fraction 0.1 --n 200  # a short run
    OMP_NUM_THREADS=1 python benchmarks/images.py --only glow_fontdigits vae_fontdigits_conv
"""

from __future__ import annotations

import argparse
import math
import multiprocessing
import os
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from gendsl.analysis import load_checked
from gendsl.data import load_dataset
from gendsl.data.dataset import as_float
from gendsl.errors import UsageError
from gendsl.lower import compile_model
from gendsl.metrics import fontdigits_scores
from gendsl.metrics.fontdigits_metrics import fontdigits_classifier
from gendsl.runs import train_settings
from gendsl.train import fit

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"

#: Training steps per example, batch as in each spec: the full run's budget (3001 s wall with
#: --jobs 2 on 2 cores, see :data:`SECONDS`).  The UNet examples get hundreds of steps, not
#: thousands: a 28x28 UNet step costs ~10 small-ConvNet steps on a CPU.
STEPS = {
    "vp_sde_fontdigits_unet": 600,
    "vp_sde_fontdigits_v": 600,
    "consistency_distillation_fontdigits": 200,
    "ddpm_fontdigits": 600,
    "cfg_fontdigits": 600,
    "ot_cfm_fontdigits_unet": 600,
    "vae_fontdigits_conv": 2000,
    "hvae_fontdigits_conv": 2000,
    "vqvae_fontdigits": 1000,
    "glow_fontdigits": 1000,
    "dcgan_fontdigits": 1000,
    "wgan_gp_fontdigits": 300,
    "sngan_fontdigits": 1000,
    "ebm_fontdigits": 300,
}
TEACHER = "vp_sde_fontdigits_v"

#: Seconds (training and sampling, one thread of a 2-worker run) of each example in the full
#: run of the README, to hand the longest first to the ``--jobs`` workers.
SECONDS = {
    "vp_sde_fontdigits_unet": 631,
    "vp_sde_fontdigits_v": 691,
    "consistency_distillation_fontdigits": 373,
    "ddpm_fontdigits": 773,
    "cfg_fontdigits": 700,
    "ot_cfm_fontdigits_unet": 715,
    "vae_fontdigits_conv": 274,
    "hvae_fontdigits_conv": 390,
    "vqvae_fontdigits": 72,
    "glow_fontdigits": 212,
    "dcgan_fontdigits": 333,
    "wgan_gp_fontdigits": 321,
    "sngan_fontdigits": 345,
    "ebm_fontdigits": 118,
}


def save_grid(samples: Tensor, path: Path, *, cols: int = 8, scale: int = 2) -> None:
    """Write up to cols² samples [n, 1, H, W] in [0, 1] as one grey-level PNG."""
    from PIL import Image

    x = samples[: cols * cols, 0].clamp(0, 1).cpu().numpy()
    rows = math.ceil(len(x) / cols)
    h, w = x.shape[1:]
    grid = np.zeros((rows * (h + 2), cols * (w + 2)), dtype=np.uint8)
    for i, img in enumerate(x):
        r, c = divmod(i, cols)
        grid[r * (h + 2) + 1 : r * (h + 2) + 1 + h, c * (w + 2) + 1 : c * (w + 2) + 1 + w] = (
            np.round(img * 255).astype(np.uint8)
        )
    Image.fromarray(grid).resize((grid.shape[1] * scale, grid.shape[0] * scale)).save(path)


def sample_quality(samples: Tensor, test: Tensor) -> list[str]:
    """fontdigits-FD and -IS (± standard error) and precision/recall against ``test``."""
    q = fontdigits_scores(samples, reference=test)
    return [
        f"{q['fontdigits_fd']:.2f}",
        f"{q['fontdigits_is']:.2f} ± {q['fontdigits_is_stderr']:.2f}",
        f"{q['fontdigits_precision']:.2f}",
        f"{q['fontdigits_recall']:.2f}",
    ]


def class_agreement(samples: Tensor, labels: Tensor) -> str:
    """The share of ``samples`` the fontdigits classifier names as ``labels`` (as ``gendsl
    eval``'s ``class_agreement``)."""
    with torch.no_grad():
        said = fontdigits_classifier()(samples.float().clamp(0, 1)).argmax(1)
    return f"{float((said == labels).float().mean()):.3f}"


def _sample(model, name: str, n: int, args: argparse.Namespace) -> Tensor:
    g = torch.Generator().manual_seed(args.seed)
    opts: dict = {}
    if model.checked.condition_vars():
        opts["y"] = torch.arange(n) % 10
    if name == "ddpm_fontdigits":
        opts["steps"] = args.ddpm_steps
    chunks = []
    for start in range(0, n, args.sample_batch):
        part = {
            k: v[start : start + args.sample_batch] if k == "y" else v for k, v in opts.items()
        }
        with torch.no_grad() if model.family != "energy" else torch.enable_grad():
            chunks.append(model.sample(min(args.sample_batch, n - start), generator=g, **part))
    return torch.cat(chunks).detach()


def _likelihoods(model, test: Tensor) -> tuple[str, str]:
    """(bits/dim, ELBO nats) on ``test``, '-' where the family has none."""
    with torch.no_grad():
        if model.family == "flow":
            g = torch.Generator().manual_seed(0)
            return f"{float(model.bits_per_dim(test, generator=g).mean()):.3f}", "-"
        if model.family == "latent":
            try:
                return "-", f"{float(model.elbo(test).mean()):.1f}"
            except UsageError:
                return "-", "-"
    return "-", "-"


def run_example(name: str, data, test: Tensor, teacher, args) -> tuple[list[str], object]:
    """Train one example, write its PNG, and return its table row and the trained model."""
    checked = load_checked(str(EXAMPLES / f"{name}.gen"), None)
    torch.manual_seed(args.seed)
    model = compile_model(checked, bindings={})
    if data.levels:
        model.set_data_levels(data.levels)
    if model.capabilities.takes("--teacher"):
        model.set_teacher(teacher)
    steps = args.steps or max(1, round(args.fraction * STEPS[name]))
    flags = argparse.Namespace(steps=steps, batch_size=args.batch, lr=None, eval_every=None)
    settings = train_settings(checked, flags)
    settings["eval_every"] = settings["log_every"] = settings["checkpoint_every"] = steps
    train = (data.x, data.y) if checked.condition_vars() else data.x
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as out:
        result = fit(model, train, out_dir=out, progress=False, device="cpu", **settings)
    seconds = time.perf_counter() - t0
    if result.ema is not None:
        result.ema.copy_to(model)
    model.eval()
    t1 = time.perf_counter()
    samples = _sample(model, name, args.n, args)
    sample_seconds = time.perf_counter() - t1
    save_grid(samples, args.out / f"{name}.png")
    bpd, elbo = _likelihoods(model, test)
    row = [name, model.family, str(steps), f"{seconds:.0f}", f"{seconds / steps:.2f}"]
    row += [f"{sample_seconds:.0f}", bpd, elbo]
    agree = "-"
    if checked.condition_vars():  # drawn for the labels 0, 1, ..., 9, 0, ... (see _sample)
        agree = class_agreement(samples, torch.arange(args.n) % 10)
    return [*row, *sample_quality(samples, test), agree], model


HEADER = ["example", "family", "steps", "train s", "s/step", "sample s"]
HEADER += ["bits/dim", "ELBO", "FD", "IS", "prec", "recall", "class agreement"]


def _print_row(row: list[str]) -> None:
    print("| " + " | ".join(row) + " |", flush=True)


def selected(only: list[str] | None, known: dict[str, int]) -> list[str]:
    """The examples ``--only`` names (all of ``known`` without it); an unknown one exits."""
    names = only or list(known)
    unknown = sorted(set(names) - set(known))
    if unknown:
        sys.exit(f"unknown example(s) {', '.join(unknown)}; expected some of {', '.join(known)}")
    return names


def run_group(group: list[str], args: argparse.Namespace) -> list[list[str]]:
    """Train the examples of ``group`` in order in this process (a distilled model after its
    teacher) and return their rows."""
    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
    data = load_dataset("fontdigits", split="train")
    test = as_float(load_dataset("fontdigits", split="test", n=args.n, seed=args.seed).x)
    rows, teacher = [], None
    for name in group:
        row, model = run_example(name, data, test, teacher, args)
        if name == TEACHER:
            teacher = model
        if args.jobs == 1:
            _print_row(row)
        rows.append(row)
    return rows


def groups_of(names: list[str]) -> list[list[str]]:
    """The examples as groups that must run in one process (the consistency model with its
    teacher), longest first (:data:`SECONDS`)."""
    groups = [[n] for n in names if n != "consistency_distillation_fontdigits"]
    if "consistency_distillation_fontdigits" in names:
        teacher = next(g for g in groups if g == [TEACHER])
        teacher.append("consistency_distillation_fontdigits")
    return sorted(groups, key=lambda g: -sum(SECONDS[n] for n in g))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=None, help="steps for every example")
    parser.add_argument(
        "--fraction", type=float, default=1.0, help="train each example this share of its budget"
    )
    parser.add_argument("--batch", type=int, default=None, help="batch size (default: spec's)")
    parser.add_argument("--n", type=int, default=500, help="samples and test images scored")
    parser.add_argument("--only", nargs="*", default=None, help="examples to run (file stems)")
    parser.add_argument("--ddpm-steps", type=int, default=50)
    parser.add_argument("--sample-batch", type=int, default=250)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("runs/bench_images"))
    parser.add_argument(
        "--jobs", type=int, default=1, help="worker processes, one thread each (rows at the end)"
    )
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
    args.out.mkdir(parents=True, exist_ok=True)
    names = selected(args.only, STEPS)
    if "consistency_distillation_fontdigits" in names and TEACHER not in names:
        names.insert(names.index("consistency_distillation_fontdigits"), TEACHER)
    data = load_dataset("fontdigits", split="train")
    test_set = load_dataset("fontdigits", split="test", n=args.n, seed=args.seed)
    test = as_float(test_set.x)
    threads = torch.get_num_threads()
    print(
        f"fontdigits, CPU, {args.jobs} process(es) of {threads} thread(s), n = {args.n}; "
        f"PNGs in {args.out}"
    )
    print("| " + " | ".join(HEADER) + " |")
    print("|" + " --- |" * len(HEADER))
    pick = torch.randperm(len(data.x), generator=torch.Generator().manual_seed(args.seed))
    real = as_float(data.x[pick[: args.n]])
    accuracy = class_agreement(as_float(test_set.x), test_set.y)  # the classifier on test digits
    _print_row(["real training images", *["-"] * 7, *sample_quality(real, test), accuracy])
    t0 = time.perf_counter()
    if args.jobs == 1:
        run_group(names, args)
    else:
        spawn = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=args.jobs, mp_context=spawn) as pool:
            futures = [pool.submit(run_group, g, args) for g in groups_of(names)]
            rows = {row[0]: row for f in futures for row in f.result()}
        for name in names:
            _print_row(rows[name])
    print(f"total {time.perf_counter() - t0:.0f} s (wall)")


if __name__ == "__main__":
    main()
