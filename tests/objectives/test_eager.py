"""Eager marks defer ``torch._dynamo`` (and with it sympy) until something compiles."""

from __future__ import annotations

import subprocess
import sys

import torch

from gendsl.objectives import eager as eager_module
from gendsl.objectives.eager import eager

REPORT = """\
import sys
import gendsl.objectives.dsm, gendsl.objectives.energy, gendsl.objectives.adversarial
import gendsl.lower.cnf, gendsl.lower.latent
print(sorted(m for m in sys.modules if m in ("torch._dynamo", "sympy")))
"""


def test_importing_eager_functions_loads_no_dynamo():
    out = subprocess.run(
        [sys.executable, "-c", REPORT], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


def test_an_eager_function_runs_as_itself_then_under_disable(monkeypatch):
    monkeypatch.setattr(eager_module, "_EAGER", [])
    monkeypatch.setattr(eager_module, "_armed", False)
    wrapped = []

    def disable(fn):
        wrapped.append(fn)
        return lambda *args: fn(*args)

    monkeypatch.setattr(torch.compiler, "disable", disable)
    monkeypatch.delitem(sys.modules, "torch._dynamo", raising=False)

    @eager
    def double(x: int) -> int:
        """Twice x."""
        return 2 * x

    assert (double(3), double.__doc__, wrapped) == (6, "Twice x.", [])
    eager_module.arm()
    assert wrapped == [double.__wrapped__] and double(4) == 8
    eager_module.arm()
    assert len(wrapped) == 1  # armed once

    @eager
    def later(x: int) -> int:
        return x + 1

    assert wrapped[-1] is later.__wrapped__ and later(1) == 2
