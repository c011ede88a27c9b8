"""Positivity of schedules: decided symbolically where sympy can, else on a grid; located."""

from __future__ import annotations

import numpy as np
import pytest
import sympy as sp

from gendsl.symbolic.expr import symbol
from gendsl.symbolic.positivity import GRID, sign_on

T = symbol("t")
UNIT = sp.Interval(0, 1, left_open=True)


@pytest.mark.parametrize(
    ("expr", "where"),
    [
        (T + sp.Rational(1, 10), None),
        (1 - 2 * T, "is <= 0 for t in [1/2, 1]"),
        (T * (1 - T) + sp.Rational(1, 100), None),
        ((T - sp.Rational(1, 2)) ** 2, "is <= 0 for t = 1/2"),  # touches zero: not positive
        (1 / (T - 2), "is <= 0 for t in (0, 1]"),
    ],
)
def test_rational_functions_are_decided_symbolically(expr, where):
    verdict = sign_on(expr, T, UNIT, strict=True)
    assert (verdict.where, verdict.how) == (where, "decided symbolically")
    grid = np.linspace(0, 1, 1001)[1:]
    values = sp.lambdify(T, expr, "numpy")(grid)
    assert (where is None) == bool(np.all(values > 0))  # the grid agrees where it can see


def test_other_functions_are_checked_on_a_grid():
    verdict = sign_on(sp.Rational(1, 2) + sp.cos(3 * T), T, UNIT, strict=True)
    t = float(verdict.where.split("t = ")[1])
    assert 0.5 + np.cos(3 * t) <= 0 and abs(t - 2 * np.pi / 9) < 2 / GRID  # first root: 2π/9
    assert verdict.how.startswith(f"checked numerically on a grid of {GRID} points")
    ok = sign_on(sp.exp(-T) * (2 + sp.sin(7 * T)), T, UNIT, strict=True)
    assert ok.where is None


def test_the_sub_vp_diffusion_may_vanish_at_t_0_only():
    beta = sp.Rational(1, 10) + sp.Rational(199, 10) * T
    big_b = sp.integrate(beta, (T, 0, T))
    g2 = beta * (1 - sp.exp(-2 * big_b))  # g(0) = 0, positive after
    assert sign_on(g2, T, UNIT, strict=True).where is None
    assert sign_on(g2, T, sp.Interval(0, 1), strict=True).where is not None


def test_derive_refuses_an_imaginary_diffusion(tmp_path, monkeypatch, capsys):
    from gendsl.cli import main

    (tmp_path / "neg.gen").write_text("""model m {
  data x : real[2]
  let beta(t) = 1 - 2 * t
  sde dx = -0.5 * beta(t) * x * dt + sqrt(beta(t)) * dw, t in [0, 1]
  net eps = MLP(hidden = [8], time = fourier)
  predict eps = eps(x_t, t)
  loss dsm
}
""")
    monkeypatch.chdir(tmp_path)
    assert main(["derive", "neg.gen"]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err.splitlines()[0] == (
        "neg.gen:4:38: error: the diffusion g(t)^2 = 1 - 2*t must be positive for t in (0, 1], "
        "but it is <= 0 for t in [1/2, 1] (decided symbolically); a schedule such as beta(t) "
        "must stay positive on the whole time range"
    )
