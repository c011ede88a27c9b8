"""Per-step cost of ``gendsl.train.fit`` against a bare loop over the same model.

The bare loop is what a hand-written training script does with the compiled model, and nothing
else: draw a batch on the device, ``loss``, ``backward``, clip, ``AdamW.step``; no host reads.
``fit`` adds what a run needs: the EMA update, the metrics rows and their sync points (a log
line every ``--log-every`` steps, which reads the rows back and checks them for NaN/inf), the
progress bookkeeping.  Both run the spec's ``train { }`` settings (batch, lr, ema) on the same
model object.

Timing: a repetition runs ``fit`` for ``--steps`` steps and the bare loop for as many, in an
order that alternates between repetitions; in both, the clock runs from the end of step
``--warmup`` to the end of the step before the last (``fit``'s set-up and its final checkpoint
are outside; the log lines inside are counted), on a device synchronised at both ends.  The
table gives milliseconds per step (median over repetitions, wall and process CPU time) and
``fit / bare``: the median over repetitions of the ratio within one repetition.

    OMP_NUM_THREADS=1 python benchmarks/fit_overhead.py [--reps 5] [--steps 60] [--device cpu]
"""

from __future__ import annotations

import argparse
import gc
import math
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path

import torch
from torch import nn

from gendsl.analysis import load_checked
from gendsl.data import load_dataset
from gendsl.lower import compile_model
from gendsl.lower.sizes import bind_sizes
from gendsl.train import fit

__all__ = ["CASES", "Case", "bare_loop", "fit_loop", "main", "ratio_table"]

ROOT = Path(__file__).resolve().parent.parent

#: (label, spec, data set, CPU batch)
CASES = [
    ("VP SDE, 8x8 UNet", "examples/vp_sde_digits_unet.gen", "digits_image", 64),
    ("VP SDE, MLP, digits", "stdlib/vp_sde.gen", "digits", 256),
    ("OT-CFM, moons", "stdlib/ot_cfm.gen", "moons", 256),
    ("VAE, digits", "stdlib/vae.gen", "digits_binary", 128),
]


class Case:
    """A spec compiled for its data set, with the data on the device and the spec's settings."""

    def __init__(self, label: str, spec: str, data: str, batch: int, device: str):
        checked = load_checked(str(ROOT / spec))
        dataset = load_dataset(data, split="train", seed=0, as_image=_as_image(checked))
        torch.manual_seed(0)
        self.label, self.batch = label, batch
        self.model = compile_model(checked, bindings=bind_sizes(checked, dataset)).to(device)
        self.data = dataset.x.to(device)
        self.lr = float(checked.train.get("lr", 1e-3))
        ema = checked.train.get("ema")
        self.ema = 0.999 if ema is None else (float(ema) or None)  # fit's default
        self.device = torch.device(device)


def _as_image(checked) -> bool | None:
    declared = checked.data_vars()
    return True if declared and declared[0].type.kind == "image" else None


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bare_loop(
    case: Case, *, steps: int, warmup: int, compiled: bool = False
) -> tuple[float, float]:
    """Seconds per step (wall, CPU) of loss, backward, clip, step over batches drawn on the
    device (bf16 autocast on CUDA, as ``fit``); ``compiled`` runs the loss under
    ``torch.compile`` (inductor, dynamic shapes)."""
    model, data = case.model, case.data
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=case.lr)
    loss_fn = torch.compile(model.loss, dynamic=True) if compiled else model.loss
    g = torch.Generator(device=case.device).manual_seed(0)
    cuda = case.device.type == "cuda"  # fit's amp = "auto": bf16 autocast on CUDA
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if cuda else nullcontext()
    model.train()
    start = (0.0, 0.0)
    for step in range(1, steps):
        idx = torch.randint(data.shape[0], (case.batch,), generator=g, device=case.device)
        opt.zero_grad(set_to_none=True)
        with autocast:
            loss = loss_fn(data[idx])
        loss.backward()
        nn.utils.clip_grad_norm_(params, math.inf)
        opt.step()
        if step == warmup:
            _sync(case.device)
            start = (time.perf_counter(), time.process_time())
    _sync(case.device)
    n = steps - 1 - warmup
    return (time.perf_counter() - start[0]) / n, (time.process_time() - start[1]) / n


def fit_loop(
    case: Case,
    *,
    steps: int,
    warmup: int,
    log_every: int,
    compile: bool | str = False,
    ema: bool = True,
) -> tuple[float, float]:
    """Seconds per step (wall, CPU) of :func:`fit` between its steps ``warmup`` and
    ``steps - 1`` (timed from its hooks); ``ema`` False turns the EMA off."""
    marks: dict[int, tuple[float, float]] = {}

    def clock(step: int, metrics) -> None:
        if step in (warmup, steps - 1):
            _sync(case.device)
            marks[step] = (time.perf_counter(), time.process_time())

    with tempfile.TemporaryDirectory() as out:
        fit(
            case.model,
            case.data,
            steps=steps,
            batch_size=case.batch,
            lr=case.lr,
            ema=case.ema if ema else None,
            grad_clip=None,
            out_dir=out,
            device=case.device,
            log_every=log_every,
            checkpoint_every=10**9,
            progress=False,
            hooks=[clock],
            compile=compile,
        )
    n = steps - 1 - warmup
    (w0, c0), (w1, c1) = marks[warmup], marks[steps - 1]
    return (w1 - w0) / n, (c1 - c0) / n


def _timed(runs: dict[str, Callable[[], tuple[float, float]]], reps: int):
    times = {k: {"wall": [], "cpu": []} for k in runs}
    names = list(runs)
    for rep in range(reps):
        order = names if rep % 2 == 0 else names[::-1]
        for name in order:
            gc.collect()
            wall, cpu = runs[name]()
            times[name]["wall"].append(wall)
            times[name]["cpu"].append(cpu)
    return times


def ratio_table(rows: list[tuple[str, int, dict[str, dict[str, list[float]]]]]) -> str:
    """One line per case: ms/step of each loop (median wall, median CPU) and the median over
    repetitions of each fit loop / bare (wall, CPU)."""
    lines = [
        "| case | batch | bare ms/step (wall, cpu) | fit ms/step (wall, cpu) "
        "| fit / bare (wall, cpu) | fit without EMA / bare (wall, cpu) |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for label, batch, t in rows:
        cells = []
        for name in ("bare", "fit"):
            wall, cpu = statistics.median(t[name]["wall"]), statistics.median(t[name]["cpu"])
            cells.append(f"{1e3 * wall:.2f}, {1e3 * cpu:.2f}")
        for name in ("fit", "fit, no EMA"):
            ratios = [
                statistics.median([a / b for a, b in zip(t[name][c], t["bare"][c], strict=True)])
                for c in ("wall", "cpu")
            ]
            cells.append(f"{ratios[0]:.3f}, {ratios[1]:.3f}")
        lines.append(f"| {label} | {batch} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--log-every", type=int, default=25)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--cases", nargs="*", help="labels to run (default: all)")
    args = parser.parse_args()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    rows = []
    for label, spec, data, batch in CASES:
        if args.cases and label not in args.cases:
            continue
        case = Case(label, spec, data, batch, args.device)
        kw = {"steps": args.steps, "warmup": args.warmup}
        fit_kw = {**kw, "log_every": args.log_every}
        times = _timed(
            {
                "bare": lambda case=case, kw=kw: bare_loop(case, **kw),
                "fit": lambda case=case, kw=fit_kw: fit_loop(case, **kw),
                "fit, no EMA": lambda case=case, kw=fit_kw: fit_loop(case, ema=False, **kw),
            },
            args.reps,
        )
        rows.append((label, batch, times))
        print(ratio_table(rows[-1:]).splitlines()[-1], flush=True)
    print(
        f"\ncommand: OMP_NUM_THREADS={torch.get_num_threads()} python benchmarks/fit_overhead.py "
        f"--reps {args.reps} --steps {args.steps} --warmup {args.warmup} "
        f"--log-every {args.log_every} --device {args.device}"
    )
    print(f"torch {torch.__version__}, {args.device}")
    print(ratio_table(rows))


if __name__ == "__main__":
    main()
