"""Variances must be positive: g(t)² of an sde on (0, T], γ(t)² of a path's noise on [0, 1].

A schedule such as β(t) = 1 − 2t makes g(t) = √β(t) imaginary for t > 1/2: training then
diverges at its first step and ``derive`` would print a complex diffusion.  The sign is decided
symbolically where sympy can (rational functions of t: ``solveset`` of the inequality on the
interval), else on a grid of :data:`GRID` points; the message says which.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import sympy as sp

from gendsl import ir
from gendsl.errors import SpecError
from gendsl.source import Span
from gendsl.symbolic.expr import lambdify_np, to_text
from gendsl.symbolic.kernel import split_terms

__all__ = ["GRID", "Verdict", "check_path_noise", "check_sde_diffusion", "sign_on"]

#: Points of the grid on which a sign sympy cannot decide is checked.
GRID = 2001

#: Rational functions up to this degree are decided by ``solveset``.
_MAX_DEGREE = 8


@dataclass(frozen=True)
class Verdict:
    """Where ``e`` fails to be positive (``where`` is None when it does not) and how we know."""

    where: str | None
    how: str


def _interval_text(s: sp.Set) -> str | None:
    if isinstance(s, sp.Interval):
        left = "(" if s.left_open else "["
        right = ")" if s.right_open else "]"
        return f"{left}{to_text(s.start)}, {to_text(s.end)}{right}"
    if isinstance(s, sp.FiniteSet):
        return ", ".join(f"t = {to_text(p)}" for p in s.args)
    if isinstance(s, sp.Union):
        parts = [_interval_text(a) for a in s.args]
        return " and ".join(p for p in parts if p) if all(parts) else None
    return None


def _symbolic(e: sp.Expr, t: sp.Symbol, domain: sp.Interval, strict: bool) -> Verdict | None:
    """The verdict of ``solveset`` for a rational function of ``t``; None if it cannot say."""
    if not e.is_rational_function(t):
        return None
    num, den = sp.fraction(sp.together(e))
    if max(sp.degree(num, t), sp.degree(den, t)) > _MAX_DEGREE:
        return None
    relation = sp.Le(e, 0) if strict else sp.Lt(e, 0)
    try:
        bad = sp.solveset(relation, t, domain)
    except (NotImplementedError, ValueError, TypeError):
        return None
    if bad is sp.S.EmptySet:
        return Verdict(None, "decided symbolically")
    text = _interval_text(bad)
    if text is None:
        return None
    shown = text if text.startswith("t =") else f"t in {text}"
    return Verdict(f"is {'<= 0' if strict else '< 0'} for {shown}", "decided symbolically")


def _numeric(e: sp.Expr, t: sp.Symbol, domain: sp.Interval, strict: bool) -> Verdict:
    grid = np.linspace(float(domain.start), float(domain.end), GRID)
    if domain.left_open:
        grid = grid[1:]
    with np.errstate(all="ignore"):
        values = lambdify_np(e, t)(grid)
    good = values > 0 if strict else values >= 0
    how = f"checked numerically on a grid of {GRID} points; sympy could not decide"
    if np.all(good):
        return Verdict(None, how)
    i = int(np.argmax(~good))
    value = "not a real number" if not np.isfinite(values[i]) else f"{values[i]:.6g}"
    return Verdict(f"is {value} at t = {grid[i]:.6g}", how)


def sign_on(e: sp.Expr, t: sp.Symbol, domain: sp.Interval, *, strict: bool) -> Verdict:
    """Whether ``e`` > 0 (``strict``) or ≥ 0 on ``domain``, symbolically where sympy can decide,
    else on a grid."""
    if e.has(sp.I) or e.has(sp.zoo, sp.nan):
        return Verdict("is not a real number", "decided symbolically")
    return _symbolic(e, t, domain, strict) or _numeric(e, t, domain, strict)


def _span_of(terms: list[ir.Expr], fallback: Span) -> Span:
    return terms[0].span.to(terms[-1].span) if terms else fallback


def _uses(term: ir.Expr, name: str) -> bool:
    return any(isinstance(n, ir.Name) and n.id == name for n in ir.walk(term))


def check_sde_diffusion(sde: ir.SDE, t: sp.Symbol, g: sp.Expr, end: float) -> None:
    """g(t)² > 0 on (0, T]: the noise of a forward sde is real and never switches off (else
    s(t)² of its kernel is not a variance); a located SpecError otherwise."""
    if g == 0:
        return
    g2 = sp.expand(g**2)
    domain = sp.Interval(0, sp.nsimplify(end), left_open=True)
    verdict = sign_on(g2, t, domain, strict=True)
    if verdict.where is None:
        return
    terms = [term for _, term in split_terms(sde.rhs) if _uses(term, "dw")]
    raise SpecError(
        f"the diffusion g({t})^2 = {to_text(g2)} must be positive for {t} in "
        f"{'(0, ' + to_text(domain.end) + ']'}, but it {verdict.where} ({verdict.how}); a "
        f"schedule such as beta({t}) must stay positive on the whole time range",
        _span_of(terms, sde.span),
    )


def check_path_noise(path: ir.Path, t: sp.Symbol, gamma: sp.Expr, noise: str) -> None:
    """γ(t)² ≥ 0 on [0, 1]: the noise scale of a path x_t = α x0 + β x1 + γ w is real."""
    if gamma == 0:
        return
    gamma2 = sp.expand(gamma**2)
    verdict = sign_on(gamma2, t, sp.Interval(0, 1), strict=False)
    if verdict.where is None:
        return
    terms = [term for _, term in split_terms(path.value) if _uses(term, noise)]
    raise SpecError(
        f"the noise scale of the path must be real: its square {to_text(gamma2)} must be >= 0 "
        f"for {t} in [0, 1], but it {verdict.where} ({verdict.how})",
        _span_of(terms, path.span),
    )
