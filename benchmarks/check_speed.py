"""How fast is the front end?  Times `gendsl check stdlib/*.gen` as a whole process, and
parse / parse+check per standard-library spec in-process; then how the cost grows: `gendsl
check` of 1k / 4k / 16k `let` statements and of flat sums of 50 / 250 / 500 terms, and `gendsl
derive` of a VP SDE with a cosine-shaped beta(t), cold (empty cache folder) and warm.

    python benchmarks/check_speed.py [--repeat 5] [--skip-stdlib]

Prints Markdown tables.  The process time includes interpreter start-up and imports, which is
what a user waits for; the front end must not import torch (asserted here as well).  The
scaling runs alternate between sizes (interleaved), each a fresh process.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _process_time(files: list[str], repeat: int) -> tuple[float, float]:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "gendsl.cli", "check", "-q", *files], check=True, cwd=ROOT
        )
        times.append(time.perf_counter() - start)
    base = []
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], check=True)
        base.append(time.perf_counter() - start)
    return statistics.median(times), statistics.median(base)


_VAE_HEAD = """model m {
  data x : binary[4]
  latent z : real[2]
  net enc = MLP(hidden = [8])
  net dec = MLP(hidden = [8])
"""
_VAE_TAIL = """  x | z ~ Bernoulli(logits = dec(z))
  guide {
    z | x ~ Normal(enc(x))
  }
  loss elbo
}
"""
_COSINE = """model cosine_vp {
  data x : real[2]
  let beta(t) = 0.1 + 19.9 * (1 - cos(pi * t)) / 2
  sde dx = -0.5 * beta(t) * x * dt + sqrt(beta(t)) * dw, t in [0, 1]
  net eps = MLP(hidden = [64], time = fourier)
  predict eps = eps(x_t, t)
  loss dsm
}
"""


def _lets(n: int) -> str:
    body = "".join(f"  let a{i} = {i}\n" for i in range(n))
    return _VAE_HEAD + body + "  z ~ Normal(0, 1)\n" + _VAE_TAIL


def _flat_sum(n: int) -> str:
    total = " + ".join(["1"] * n)
    return _VAE_HEAD + f"  let s = {total}\n  z ~ Normal(0, s / {n})\n" + _VAE_TAIL


def _run(argv: list[str], cache: str) -> float:
    env = {**os.environ, "GENDSL_CACHE": cache, "OMP_NUM_THREADS": "1"}
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "gendsl.cli", *argv],
        check=True,
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
    )
    return time.perf_counter() - start


def _scaling(title: str, unit: str, texts: dict[int, str], repeat: int, folder: Path) -> None:
    """`gendsl check` of each text, sizes interleaved, median of ``repeat``; the cost per
    statement or term shows whether it grows linearly."""
    paths = {}
    for n, text in texts.items():
        paths[n] = folder / f"{title.split()[0]}_{n}.gen"
        paths[n].write_text(text)
    cache = str(folder / "cache")
    _run(["check", "-q", str(paths[min(paths)])], cache)  # grammar tables into the cache
    times: dict[int, list[float]] = {n: [] for n in texts}
    for _ in range(repeat):
        for n, path in paths.items():
            times[n].append(_run(["check", "-q", str(path)], cache))
    print(f"| {title} | `gendsl check` (s) | per {unit} (us) |")
    print("|---|---:|---:|")
    for n, t in times.items():
        med = statistics.median(t)
        print(f"| {n} | {med:.2f} | {med / n * 1e6:.0f} |")
    print()


def _cosine_derive(repeat: int, folder: Path) -> None:
    """`gendsl derive` of the cosine VP SDE: cold (a fresh cache folder each time) and warm
    (the folder of the previous run), alternating."""
    path = folder / "cosine_vp.gen"
    path.write_text(_COSINE)
    cold, warm = [], []
    for i in range(repeat):
        cache = str(folder / f"cosine-cache-{i}")
        cold.append(_run(["derive", str(path)], cache))
        warm.append(_run(["derive", str(path)], cache))
    c, w = statistics.median(cold), statistics.median(warm)
    print("| cosine VP SDE `gendsl derive` | cold (s) | warm (s) | cold / warm |")
    print("|---|---:|---:|---:|")
    print(f"| median of {repeat} | {c:.2f} | {w:.2f} | {c / w:.2f} |")
    print()


def scaling(repeat: int) -> None:
    """The growth tables (module docstring)."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        _scaling(
            "let statements",
            "statement",
            {n: _lets(n) for n in (1000, 4000, 16000)},
            repeat,
            folder,
        )
        _scaling(
            "flat sum terms", "term", {n: _flat_sum(n) for n in (50, 250, 500)}, repeat, folder
        )
        _cosine_derive(repeat, folder)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--skip-stdlib", action="store_true", help="only the growth tables")
    args = parser.parse_args()
    scaling(args.repeat)
    if args.skip_stdlib:
        return
    sys.path.insert(0, str(ROOT))  # run as a script from anywhere: gendsl is not installed

    from gendsl.analysis import check_text
    from gendsl.frontend.parser import parse

    files = sorted((ROOT / "stdlib").glob("*.gen"))
    rel = [str(f.relative_to(ROOT)) for f in files]
    whole, python_alone = _process_time(rel, args.repeat)
    print(
        f"`gendsl check stdlib/*.gen` ({len(files)} specs), median of {args.repeat} runs: "
        f"{whole * 1000:.0f} ms wall (bare `python -c pass`: {python_alone * 1000:.0f} ms)"
    )
    print()
    print("| spec | parse (ms) | parse + check (ms) |")
    print("|---|---:|---:|")
    for f in files:
        text = f.read_text()
        parse(text, str(f))
        check_text(text, str(f), search_dir=f.parent)  # warm caches (imports, sympy)
        p, c = [], []
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            parse(text, str(f))
            t1 = time.perf_counter()
            check_text(text, str(f), search_dir=f.parent)
            t2 = time.perf_counter()
            p.append(t1 - t0)
            c.append(t2 - t1)  # check_text parses too
        print(
            f"| {f.stem} | {statistics.median(p) * 1000:.2f} | {statistics.median(c) * 1000:.2f} |"
        )
    print()
    print(f"torch imported by the front end: {'torch' in sys.modules}")


if __name__ == "__main__":
    main()
