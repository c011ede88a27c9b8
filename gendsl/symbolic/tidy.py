"""Bounded simplification: sympy's ``simplify`` where it is cheap, cheap rewrites elsewhere.

``sp.simplify`` tries ``trigsimp``, whose factorisations (Wang's algorithm) can run for minutes on
a schedule as plain as β(t) = 0.1 + 19.9 (1 − cos πt)/2.  :func:`tidy` keeps ``simplify`` for
expressions without trigonometric functions and of at most :data:`MAX_OPS` operations (every
polynomial, exponential and logarithmic schedule of the standard library); any other expression
gets the shortest (by ``count_ops``) of a fixed list of rewrites that run in polynomial time:
expansion, cancellation, power and exponential combination.  The result is always equal to the
input; only its form may be less tidy.  Results are remembered on disk by the canonical text
of the input (:mod:`gendsl.symbolic.store`), so a spec's second command simplifies nothing.
"""

from __future__ import annotations

import numpy as np
import sympy as sp
from sympy.functions.elementary.trigonometric import TrigonometricFunction

from gendsl.symbolic.store import remembered

__all__ = ["MAX_OPS", "tidy", "vanishes"]

#: The largest expression (``sp.count_ops``) handed to ``sp.simplify``.
MAX_OPS = 120


def _cheap_forms(e: sp.Expr) -> list[sp.Expr]:
    expanded = sp.expand(e)
    return [
        e,
        expanded,
        sp.powsimp(expanded, combine="exp"),
        sp.cancel(sp.powsimp(sp.expand(sp.powsimp(e, combine="exp")), combine="exp")),
        sp.factor_terms(expanded),
    ]


def _shortest(e: sp.Expr) -> sp.Expr:
    if not e.has(TrigonometricFunction) and sp.count_ops(e) <= MAX_OPS:
        return sp.simplify(e)
    return min(_cheap_forms(e), key=sp.count_ops)


def tidy(e: sp.Expr, *, time: str = "t") -> sp.Expr:
    """``e`` in a short form, in bounded time (see the module docstring); remembered on disk
    (:mod:`gendsl.symbolic.store`) when ``e`` is a function of the time ``time`` only."""
    if not isinstance(e, sp.Basic) or e.is_Atom:
        return e
    return remembered("tidy", (e,), lambda: _shortest(e), time=time)


def _numerically_zero(e: sp.Expr, *, trials: int = 5) -> bool:
    """Whether ``e`` is 0, relative to the size of its terms, at ``trials`` random points of
    (0.1, 0.9) for every free symbol (a nonzero elementary expression vanishes there with
    probability 0)."""
    names = sorted(e.free_symbols, key=str)
    terms = e.args if isinstance(e, sp.Add) else (e,)
    fn = sp.lambdify(names, list(terms), modules="numpy")
    rng = np.random.default_rng(0)
    for _ in range(trials):
        with np.errstate(all="ignore"):
            values = np.asarray(fn(*rng.uniform(0.1, 0.9, size=len(names))), dtype=complex)
        total = complex(values.sum())
        if not (np.isfinite(total) and abs(total) <= 1e-9 * (1 + np.abs(values).sum())):
            return False
    return True


def vanishes(e: sp.Expr) -> bool:
    """Whether ``e`` is identically zero, in bounded time: ``expand`` settles most cases;
    ``simplify`` decides what it leaves when that is cheap (see :func:`tidy`); otherwise the
    expression is evaluated at random points."""
    expanded = sp.expand(e)
    if expanded == 0:
        return True
    if not expanded.has(TrigonometricFunction) and sp.count_ops(expanded) <= MAX_OPS:
        return sp.simplify(expanded) == 0
    return _numerically_zero(expanded)
