"""What the back ends pay for a spec's process or path: the VP SDE of
``examples/vp_sde_moons.gen`` and a trigonometric matching path, turned into the torch process /
path functions, cold (empty cache folder: sympy derives them) and warm (read back from
``$GENDSL_CACHE/closed_forms.json`` without sympy).

    OMP_NUM_THREADS=1 python benchmarks/closed_forms_speed.py [--repeat 3]

Each measurement is a fresh process that has imported torch already (every back end does);
the CPU time covers the lookup or derivation and building the torch functions, and whether
sympy got imported.  Cold and warm alternate (interleaved).  Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

CHILD = """\
import sys, time
import torch
from gendsl.frontend import ast
from gendsl.frontend.parser import parse
model = parse(sys.argv[1], "spec.gen").models[0]
lets = {s.name: s for s in model.body if isinstance(s, ast.Let)}
start = time.process_time()
from gendsl.symbolic import path_forms, sde_forms, to_process, torch_fns
for s in model.body:
    if isinstance(s, ast.SDE):
        to_process(sde_forms(s, lets))
    elif isinstance(s, ast.Path):
        torch_fns(path_forms(s, lets))
print(time.process_time() - start, "sympy" in sys.modules)
"""

SPECS = {
    "VP SDE": (ROOT / "examples" / "vp_sde_moons.gen").read_text(encoding="utf-8"),
    "path": """model m {
  data x1 : real[2]
  latent x0 : real[2]
  x0 ~ Normal(0, 1)
  path x_t = cos(pi * t / 2) * x0 + sin(pi * t / 2) * x1 + 0.1 * sin(pi * t) * w
}
""",
}


def _measure(spec: str, cache: str) -> tuple[float, bool]:
    env = {**os.environ, "GENDSL_CACHE": cache, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [sys.executable, "-c", CHILD, spec], capture_output=True, text=True, env=env, check=True
    ).stdout.split()
    return float(out[0]), out[1] == "True"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    print("| spec | cold ms CPU | warm ms CPU | cold / warm | sympy loaded cold / warm |")
    print("|---|---|---|---|---|")
    for name, spec in SPECS.items():
        cold, warm, loaded = [], [], set()
        for _ in range(args.repeat):
            with tempfile.TemporaryDirectory() as cache:
                seconds, cold_sympy = _measure(spec, cache)
                cold.append(seconds)
                seconds, warm_sympy = _measure(spec, cache)
                warm.append(seconds)
                loaded.add((cold_sympy, warm_sympy))
        c, w = statistics.median(cold) * 1000, statistics.median(warm) * 1000
        flags = ", ".join(f"{a} / {b}" for a, b in sorted(loaded))
        print(f"| {name} | {c:.0f} | {w:.0f} | {c / w:.0f}x | {flags} |")


if __name__ == "__main__":
    main()
