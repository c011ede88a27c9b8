"""Helpers of the end-to-end CLI tests (the fixtures are in ``conftest.py``).

Every subprocess gets ``GENDSL_CACHE`` pointing at one temporary folder per test session (so
the digits classifier behind ``digits_fd`` is trained once, never in the user's cache) and
``OMP_NUM_THREADS=1`` (CI has two cores and runs other tests beside these).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
STDLIB = REPO / "stdlib"

TINY_DIFFUSION = """\
# A small VP SDE (Song et al. 2021) for 2-D toy data: the stdlib vp_sde with a smaller network.
model tiny_vp {
  data x : real[D]
  let beta(t) = 0.1 + 19.9 * t
  sde dx = -0.5 * beta(t) * x * dt + sqrt(beta(t)) * dw, t in [0, 1]
  net eps = MLP(hidden = [HIDDEN, HIDDEN], time = fourier)
  predict eps = eps(x_t, t)
  loss dsm
  sample with dpm_solver(order = 2, steps = 20)
  train {
    steps = STEPS
    batch = BATCH
    lr = LR
  }
}
"""


def tiny_diffusion(
    *, hidden: int = 32, steps: int = 40, batch: int = 32, lr: float = 0.002, data: str = "real[D]"
) -> str:
    """The text of :data:`TINY_DIFFUSION` with its sizes, ``train { }`` values and data type."""
    return (
        TINY_DIFFUSION.replace("HIDDEN", str(hidden))
        .replace("STEPS", str(steps))
        .replace("BATCH", str(batch))
        .replace("LR", repr(lr))
        .replace("real[D]", data)
    )


def ok(result: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    """``result`` after asserting exit code 0 (the output is shown when it is not)."""
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    return result
