"""Symbolic results are remembered on disk by canonical text: the second derivation of a spec
simplifies and integrates nothing, and reads back exactly what the first one computed."""

from __future__ import annotations

import numpy as np
import pytest
import sympy as sp
from symbolic_specs import first, lets_of, model_of

from gendsl import ir
from gendsl.symbolic import store, tidy
from gendsl.symbolic.kernel import sde_kernel

COSINE = """
  let beta(t) = 0.1 + 19.9 * (1 - cos(pi * t)) / 2
  sde dx = -0.5 * beta(t) * x * dt + sqrt(beta(t)) * dw, t in [0, 1]
"""


@pytest.fixture
def counted(monkeypatch, tmp_path):
    """A fresh cache folder and counters of every simplification and integration."""
    monkeypatch.setenv("GENDSL_CACHE", str(tmp_path))
    monkeypatch.setattr(store, "_loaded", None)
    calls = {"simplify": 0, "integrate": 0, "shortest": 0}

    def counting(name, fn):
        def wrapper(*args, **kwargs):
            calls[name] += 1
            return fn(*args, **kwargs)

        return wrapper

    monkeypatch.setattr(sp, "simplify", counting("simplify", sp.simplify))
    monkeypatch.setattr(sp, "integrate", counting("integrate", sp.integrate))
    monkeypatch.setattr(tidy, "_shortest", counting("shortest", tidy._shortest))
    return calls


def _kernel():
    model = model_of(COSINE)
    return sde_kernel(first(model, ir.SDE), lets_of(model))


def test_a_second_derivation_runs_no_simplify_and_no_integral(counted, monkeypatch):
    cold = _kernel()
    assert counted["integrate"] >= 1 and counted["shortest"] >= 3
    monkeypatch.setattr(store, "_loaded", None)  # a new process: read the folder again
    for key in counted:
        counted[key] = 0
    warm = _kernel()
    assert counted == {"simplify": 0, "integrate": 0, "shortest": 0}
    for name in ("f", "g", "a", "s2", "log_snr"):
        assert getattr(warm, name) == getattr(cold, name), name
    t = np.linspace(0.0, 1.0, 11)
    np.testing.assert_array_equal(warm.s_fn(t), cold.s_fn(t))


def test_the_cosine_schedule_avoids_the_unbounded_simplify(counted):
    _kernel()
    assert counted["simplify"] == 0  # trigonometric: only the bounded rewrites run


@pytest.mark.parametrize(
    "text",
    [
        "__import__('os').system('true')",
        "Symbol('t').__class__",
        "Integer(1) + Integer(2)",
        "lambda: 0",
        "Pow(Integer(2), Integer(3)",
    ],
)
def test_a_stored_text_is_never_evaluated(text):
    with pytest.raises(store._Unreadable):
        store._read(text)


def test_a_damaged_entry_is_computed_again(counted, tmp_path, monkeypatch):
    t = sp.Symbol("t", nonnegative=True)
    e = sp.cos(t) ** 2 + sp.sin(t) ** 2 + t
    first_value = tidy.tidy(e)
    path = tmp_path / "symbolic.json"
    path.write_text(path.read_text().replace("Symbol", "open"))
    monkeypatch.setattr(store, "_loaded", None)
    counted["shortest"] = 0
    assert tidy.tidy(e) == first_value
    assert counted["shortest"] == 1


_PROBE = """
import sys
from gendsl.cli import main
code = main(["derive", sys.argv[1]])
print(code, "sympy" in sys.modules, "scipy" in sys.modules)
"""


def test_a_second_derive_imports_no_sympy(tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    spec = tmp_path / "cosine.gen"
    spec.write_text(
        "model m {\n  data x : real[2]\n"
        + COSINE
        + "  net eps = MLP(hidden = [8], time = fourier)\n"
        "  predict eps = eps(x_t, t)\n  loss dsm\n}\n"
    )
    env = {**os.environ, "GENDSL_CACHE": str(tmp_path / "cache"), "PYTHONPATH": str(root)}

    def run() -> tuple[str, str]:
        done = subprocess.run(
            [sys.executable, "-c", _PROBE, str(spec)],
            capture_output=True,
            text=True,
            env=env,
            cwd=tmp_path,
            check=True,
        )
        out = done.stdout.splitlines()
        return "\n".join(out[:-1]), out[-1]

    cold_text, cold = run()
    warm_text, warm = run()
    assert cold == "0 True False"  # derived by sympy; closed forms: no quadrature (scipy)
    assert warm == "0 False False"  # remembered: neither is imported
    assert warm_text == cold_text and "g(t) = sqrt(" in warm_text


def test_zero_tests_stay_bounded_and_right(counted):
    t, x = sp.Symbol("t", nonnegative=True), sp.Symbol("x", real=True)
    assert tidy.vanishes(sp.sin(t) ** 2 + sp.cos(t) ** 2 - 1)  # trigonometric: by evaluation
    assert tidy.vanishes(sp.tan(t) * sp.cos(t) - sp.sin(t))
    assert not tidy.vanishes(sp.sin(t) - t + t**3 / 6)  # zero to third order only
    assert counted["simplify"] == 0
    assert tidy.vanishes(sp.sqrt(t) ** 2 * x - t * x) and not tidy.vanishes(sp.exp(t) - 1 - t)
