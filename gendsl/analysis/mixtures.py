"""Checks of a mixture site (``GaussianMixture(weights, locs, scales)``): every parameter ends
in the component axis K (:mod:`gendsl.distributions`), so literal lists must agree on K.

``weights`` must list the components (a list, one positive weight each); ``locs`` and
``scales`` are either shared by all components (no list at their top) or list K of them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from gendsl.analysis.options import describe
from gendsl.distributions import DistInfo
from gendsl.frontend import ast
from gendsl.source import Span

__all__ = ["check_components"]


def _components(e: ast.Expr) -> int | None:
    """K of a parameter written as a literal list (its outer length), else None."""
    return len(e.items) if isinstance(e, ast.List) else None


def _non_positive(e: ast.Expr) -> ast.Expr | None:
    """The first literal item ≤ 0 of a list (weights, scales)."""
    for item in e.items if isinstance(e, ast.List) else ():
        negative = isinstance(item, ast.Neg) and isinstance(item.operand, ast.Num)
        if negative or (isinstance(item, ast.Num) and item.value <= 0):
            return item
    return None


def check_components(
    info: DistInfo, params: Mapping[str, ast.Expr], error: Callable[[str, Span], None]
) -> bool:
    """Report weights that are not a list of positive numbers and parameters whose number of
    components differs from the weights'; True when nothing was reported."""
    if not info.mixture:
        return True
    weights = params["weights"]
    k = _components(weights)
    if k is None:
        error(
            f"{info.name}: weights must list one weight per component, e.g. weights = [1, 1]",
            weights.span,
        )
        return False
    for name, what in (("weights", "weight"), ("scales", "scale")):
        bad = _non_positive(params[name])
        if bad is not None:
            error(f"{info.name}: every {what} must be > 0; found {describe(bad)}", bad.span)
            return False
    for name in ("locs", "scales"):
        n = _components(params[name])
        if n is not None and n != k:
            error(
                f"{info.name}: {name} lists {n} components but weights lists {k}; give one "
                f"entry per component, or one value shared by all",
                params[name].span,
            )
            return False
    return True
