"""A spec's second run spends no time in sympy: on a warm cache, ``train`` of a diffusion and a
matching model loads none of gendsl's sympy modules (the closed forms come from the cache, read
back without sympy), and ``sample``, ``eval`` and ``compile`` load no sympy at all."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

#: Runs several commands in one process, then reports what it loaded.
RUN_AND_REPORT = """\
import json, sys
from gendsl.cli import main
codes = [main(args) for args in json.loads(sys.argv[1])]
print("MODULES", " ".join(sorted(sys.modules)), file=sys.stderr)
sys.exit(max(codes))
"""

#: gendsl's modules that import sympy.
SYMPY_MODULES = {
    f"gendsl.symbolic.{name}"
    for name in ("expr", "kernel", "path", "chain", "store", "tidy", "derivation", "positivity")
}

VP = """\
model vp {
  data x : real[2]
  let beta(t) = 0.1 + (20 - 0.1) * t
  sde dx = -0.5 * beta(t) * x * dt + sqrt(beta(t)) * dw, t in [0, 1]
  net eps = MLP(hidden = [8], time = fourier)
  predict eps = eps(x_t, t)
  loss dsm
  sample with dpm_solver(order = 2, steps = 3)
  train {
    steps = 2
    batch = 8
  }
}
"""

FM = """\
model fm {
  data x1 : real[2]
  latent x0 : real[2]
  x0 ~ Normal(0, 1)
  path x_t = (1 - 0.999 * t) * x0 + t * x1 + 0.1 * sin(pi * t) * w
  net v = MLP(hidden = [8], time = concat)
  predict velocity = v(x_t, t)
  loss flow_matching
  sample with ode(method = euler, steps = 3)
  train {
    steps = 2
    batch = 8
  }
}
"""


def _run(commands: list[list[str]], env: dict[str, str], cwd) -> set[str]:
    result = subprocess.run(
        [sys.executable, "-c", RUN_AND_REPORT, json.dumps(commands)],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return set(re.search(r"MODULES (.*)", result.stderr).group(1).split())


@pytest.fixture
def warm_env(cli_env, tmp_path) -> dict[str, str]:
    return {**cli_env, "GENDSL_CACHE": str(tmp_path / "cache")}


def test_the_second_run_of_a_spec_loads_no_sympy_module_of_gendsl(warm_env, tmp_path):
    (tmp_path / "vp.gen").write_text(VP)
    (tmp_path / "fm.gen").write_text(FM)
    train = [
        ["train", f"{name}.gen", "--data", "moons", "--out", f"run_{name}", "--no-progress"]
        for name in ("vp", "fm")
    ]
    cold = _run(train, warm_env, tmp_path)
    assert {"gendsl.symbolic.kernel", "gendsl.symbolic.path"} <= cold
    again = [[*args, "--overwrite"] for args in train]
    use = [
        cmd
        for name in ("vp", "fm")
        for cmd in (
            ["sample", f"run_{name}", "-n", "8", "--out", f"{name}.pt"],
            ["eval", f"run_{name}", "--data", "moons", "-n", "32"],
            ["compile", f"{name}.gen"],
        )
    ]
    trained = _run(again, warm_env, tmp_path)
    assert "gendsl.symbolic.closed_forms" in trained
    assert not trained & SYMPY_MODULES, sorted(trained & SYMPY_MODULES)
    # (torch's optimisers load sympy themselves, through torch._dynamo, when they step)
    used = _run(use, warm_env, tmp_path)
    assert "gendsl.symbolic.closed_forms" in used
    assert not {m for m in used if m == "sympy" or m.startswith("sympy.")}
    assert (tmp_path / "vp.pt").exists() and (tmp_path / "fm.pt").exists()
