"""Training and sampling speed on an accelerator: bare loop, ``fit``, ``fit`` compiled.

For each case (the stdlib's VP SDE on digits with an MLP, flow matching and OT-CFM on moons —
exact, and certified within 1% by ``examples/ot_cfm_certified.gen``: their ``bare`` columns give
the OT-CFM / flow-matching step ratio at batch 1024 —, the VAE on binarised digits, and the 8x8
UNet of ``examples/vp_sde_digits_unet.gen`` at two batch sizes) one table
line gives milliseconds per training step of

* ``bare``: loss, backward, clip, AdamW step over batches drawn on the device, no host reads;
* ``fit``: :func:`gendsl.train.fit` with the spec's settings (EMA included);
* ``compiled``: ``fit(compile=True)``: TorchInductor, CUDA graphs on CUDA (fixed batch);

the ratios to ``bare`` (median over repetitions of the ratio within one), the sampling
throughput (samples/s of ``model.sample`` at about 10 network evaluations, with the count it
took), and the peak device memory of the compiled run.  The three loops alternate over
``--reps`` repetitions and the medians are shown (on the CPU with the process's CPU time in
parentheses); timing is from ``fit_overhead.py`` (device synchronised at both ends).

    python benchmarks/gpu.py --device cuda                  # the GPU table
    OMP_NUM_THREADS=1 python benchmarks/gpu.py --device cpu --tiny   # a smoke run on the CPU
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch
from fit_overhead import Case, bare_loop, fit_loop

__all__ = ["CASES", "TINY", "main", "sample_rate"]

#: (label, spec, data, batch) on the GPU
CASES = [
    ("VP SDE, 8x8 UNet", "examples/vp_sde_digits_unet.gen", "digits_image", 256),
    ("VP SDE, 8x8 UNet", "examples/vp_sde_digits_unet.gen", "digits_image", 4096),
    ("VP SDE, MLP, digits", "stdlib/vp_sde.gen", "digits", 4096),
    ("Flow matching, moons", "stdlib/flow_matching.gen", "moons", 1024),
    ("OT-CFM, moons", "stdlib/ot_cfm.gen", "moons", 1024),
    ("OT-CFM 1%, moons", "examples/ot_cfm_certified.gen", "moons", 1024),
    ("VAE, digits", "stdlib/vae.gen", "digits_binary", 4096),
]
#: the CPU smoke run's batch
TINY = 16


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def sample_rate(case: Case, n: int, reps: int) -> tuple[float, str]:
    """Samples per second of ``model.sample(n)`` at about 10 network evaluations (the steps
    scaled down for a two-evaluation solver; one pass for the one-pass families) and the
    evaluations it took."""
    model = case.model
    model.eval()
    g = torch.Generator(device=case.device).manual_seed(0)
    kwargs: dict[str, int] = {}
    if model.family not in ("latent", "flow", "adversarial"):
        with torch.no_grad():
            model.sample(1, steps=10, generator=g)
        per_step = max(1, round(model.last_nfe / 10))
        kwargs["steps"] = max(1, 10 // per_step)
    times = []
    with torch.no_grad():
        for _ in range(reps + 1):
            _sync(case.device)
            start = time.perf_counter()
            model.sample(n, generator=g, **kwargs)
            _sync(case.device)
            times.append(time.perf_counter() - start)
    model.train()
    nfe = f"{model.last_nfe} NFE" if kwargs else "one pass"
    return n / statistics.median(times[1:]), nfe


def _peak_mib(device: torch.device) -> str:
    if device.type != "cuda":
        return "n/a (CPU)"
    return f"{torch.cuda.max_memory_allocated(device) / 2**20:.0f}"


def _compiled(case: Case, **kw) -> tuple[float, float]:
    if case.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(case.device)
    return fit_loop(case, compile=True, **kw)


def _row(label: str, batch: int, args: argparse.Namespace) -> str:
    case = Case(label, *_spec_and_data(label), batch, args.device)
    kw = {"steps": args.steps, "warmup": args.warmup}
    runs = {
        "bare": lambda: bare_loop(case, **kw),
        "fit": lambda: fit_loop(case, log_every=args.log_every, **kw),
        "compiled": lambda: _compiled(case, log_every=args.log_every, **kw),
    }
    times: dict[str, list[tuple[float, float]]] = {k: [] for k in runs}
    for rep in range(args.reps):
        for name in list(runs) if rep % 2 == 0 else list(runs)[::-1]:
            times[name].append(runs[name]())
    peak = _peak_mib(case.device)
    rate, nfe = sample_rate(case, args.samples, args.reps)
    cpu = case.device.type == "cpu"
    cells = []
    for name in runs:
        wall = statistics.median(t[0] for t in times[name])
        cells.append(f"{1e3 * wall:.2f}")
        if cpu:  # the process's CPU time too: the machine may be shared
            cells[-1] += f" ({1e3 * statistics.median(t[1] for t in times[name]):.2f})"
        if name != "bare":
            ratio = statistics.median(
                a[0] / b[0] for a, b in zip(times[name], times["bare"], strict=True)
            )
            cells.append(f"{ratio:.3f}")
    return f"| {label} | {batch} | " + " | ".join(cells) + f" | {rate:,.0f} ({nfe}) | {peak} |"


def _spec_and_data(label: str) -> tuple[str, str]:
    return next((spec, data) for name, spec, data, _ in CASES if name == label)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--warmup", type=int, default=15)
    parser.add_argument("--log-every", type=int, default=100)
    parser.add_argument("--samples", type=int, default=1024)
    parser.add_argument(
        "--tiny", action="store_true", help=f"batch {TINY}, few steps: prove it runs on a CPU"
    )
    parser.add_argument("--cases", nargs="*", help="labels to run (default: all)")
    parser.add_argument("--batch", type=int, help="one batch size for every case")
    args = parser.parse_args()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    if args.tiny:
        args.reps, args.steps, args.warmup, args.samples = 1, 8, 3, 16
    batch_size = TINY if args.tiny else args.batch
    cases = [(label, batch_size or batch) for label, _, _, batch in CASES]
    cases = [c for c in dict.fromkeys(cases) if not args.cases or c[0] in args.cases]
    name = torch.cuda.get_device_name() if args.device.startswith("cuda") else "CPU"
    print(
        f"command: python benchmarks/gpu.py --device {args.device}"
        + (" --tiny" if args.tiny else "")
        + (f" --batch {args.batch}" if args.batch else "")
        + f" (reps {args.reps}, steps {args.steps}, warm-up {args.warmup}, "
        f"OMP_NUM_THREADS={torch.get_num_threads()}); "
        f"torch {torch.__version__}, {name}"
    )
    print(
        "| case | batch | bare ms/step | fit ms/step | fit / bare | compiled ms/step "
        "| compiled / bare | samples/s at ~10 NFE | peak MiB (compiled) |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for label, batch in cases:
        print(_row(label, batch, args), flush=True)


if __name__ == "__main__":
    main()
