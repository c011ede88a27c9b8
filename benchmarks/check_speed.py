"""How fast is the front end?  Times `gendsl check stdlib/*.gen` as a whole process, and
parse / parse+check per standard-library spec in-process.

    python benchmarks/check_speed.py [--repeat 5]

Prints a Markdown table.  The process time includes interpreter start-up and imports, which is
what a user waits for; the front end must not import torch (asserted here as well).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

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
