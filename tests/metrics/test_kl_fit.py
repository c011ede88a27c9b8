"""Forward KL fits match the moments; reverse KL fits sit on one mode (KL = log 2)."""

from __future__ import annotations

import math
import runpy
import sys
from pathlib import Path

import pytest
import scipy.integrate
import torch
from torch.distributions import Normal

from gendsl.metrics.kl_fit import bimodal, fit_gaussian, kl_on_grid, moment_match

GRID = torch.linspace(-20, 20, 40001, dtype=torch.float64)


def _normal(mu: float, sigma: float) -> Normal:
    return Normal(torch.tensor(mu, dtype=torch.float64), torch.tensor(sigma, dtype=torch.float64))


def test_moment_match_is_the_mixture_moments() -> None:
    """Var = std² + separation² (law of total variance)."""
    assert moment_match(bimodal(2.0, 0.5)) == pytest.approx((0.0, math.sqrt(4.25)), abs=1e-12)


def test_kl_on_grid_matches_the_gaussian_closed_form() -> None:
    """KL(N(m1, s1²) ‖ N(m2, s2²)) = log(s2/s1) + (s1² + (m1 − m2)²) / (2 s2²) − ½."""
    p, q = _normal(0.3, 0.7), _normal(-1.0, 1.6)
    exact = math.log(1.6 / 0.7) + (0.49 + 1.69) / (2 * 2.56) - 0.5
    assert kl_on_grid(p, q, GRID) == pytest.approx(exact, abs=1e-9)


def test_forward_fit_covers_both_modes_and_reverse_fit_seeks_one() -> None:
    p = bimodal(2.0, 0.5)
    # spread of the fitted values over seeds is ~0.005 at 300 steps of 512 draws: 6x that
    forward = fit_gaussian(
        p, direction="forward", steps=300, generator=torch.Generator().manual_seed(0)
    )
    assert forward == pytest.approx(moment_match(p), abs=0.03)
    gen = torch.Generator().manual_seed(1)
    mu, sigma = fit_gaussian(p, direction="reverse", steps=300, generator=gen)
    assert (mu, sigma) == pytest.approx((2.0, 0.5), abs=0.03)  # the mode nearer the start 0.5

    # at q = N(2, ¼): p = ½ q (1 + e^{−16x}), so KL(q ‖ p) = log 2 − E_q log(1 + e^{−16x})
    def integrand(x: float) -> float:
        density = math.exp(-2 * (x - 2) ** 2) / math.sqrt(2 * math.pi * 0.25)
        return density * (math.log(2) - math.log1p(math.exp(-16 * x)))

    exact = scipy.integrate.quad(integrand, -8, 12, points=[0, 2], epsabs=1e-13)[0]
    assert exact == pytest.approx(math.log(2), abs=2e-4)  # nearly log 2: the other mode's tail
    assert kl_on_grid(_normal(2.0, 0.5), p, GRID) == pytest.approx(exact, abs=1e-9)
    f, r = _normal(*forward), _normal(mu, sigma)
    assert kl_on_grid(p, f, GRID) < kl_on_grid(p, r, GRID)  # each wins its own direction
    assert kl_on_grid(r, p, GRID) < kl_on_grid(f, p, GRID)


def test_example_prints_the_table_and_writes_the_png(tmp_path, capsys, monkeypatch) -> None:
    script = Path(__file__).resolve().parents[2] / "examples" / "kl_directions.py"
    png = tmp_path / "kl.png"
    monkeypatch.setattr(sys, "argv", [str(script), "--steps", "50", "--plot", str(png)])
    with pytest.raises(SystemExit) as done:
        runpy.run_path(str(script), run_name="__main__")
    assert done.value.code == 0
    out = capsys.readouterr().out
    assert "| forward KL(p‖q) |" in out and "| reverse KL(q‖p) |" in out
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
