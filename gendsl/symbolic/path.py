"""The target velocity of a declared probability path.

``path x_t = α(t) x0 + β(t) x1 + γ(t) w`` with w ~ N(0, I) is a conditional path between x0 (at
t = 0) and x1 (at t = 1); its conditional velocity is the time derivative along a fixed
(x0, x1, w):

    u_t = α'(t) x0 + β'(t) x1 + γ'(t) w

(Lipman et al. 2023, "Flow Matching for Generative Modeling", eq. 15 for the Gaussian path;
Tong et al. 2024, "Improving and generalizing flow-based generative models with minibatch optimal
transport", eq. 15 for the noise term; Albergo & Vanden-Eijnden 2023, "Building Normalizing Flows
with Stochastic Interpolants", for general α, β).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
import sympy as sp

from gendsl import ir
from gendsl.errors import SpecError
from gendsl.symbolic.expr import is_zero, lambdify_np, symbol, to_sympy, to_text
from gendsl.symbolic.kernel import split_terms
from gendsl.symbolic.tidy import tidy

__all__ = ["PathKernel", "path_velocity"]

NumFn = Callable[[np.ndarray], np.ndarray]

#: The name of the Gaussian noise of a path.
NOISE = "w"


@dataclass
class PathKernel:
    """x_t = α x0 + β x1 + γ w and u_t = α' x0 + β' x1 + γ' w as sympy expressions of ``t``."""

    target: str
    x0: str
    x1: str
    t: sp.Symbol
    alpha: sp.Expr
    beta: sp.Expr
    gamma: sp.Expr
    d_alpha: sp.Expr
    d_beta: sp.Expr
    d_gamma: sp.Expr

    def fn(self, name: str) -> NumFn:
        """A vectorised numpy function of t for ``alpha``, ``d_beta``, ... ."""
        return lambdify_np(getattr(self, name), self.t)

    @property
    def x_t(self) -> sp.Expr:
        """α x0 + β x1 + γ w."""
        x0, x1, w = sp.symbols(f"{self.x0} {self.x1} {NOISE}")
        return self.alpha * x0 + self.beta * x1 + self.gamma * w

    @property
    def u_t(self) -> sp.Expr:
        """α' x0 + β' x1 + γ' w."""
        x0, x1, w = sp.symbols(f"{self.x0} {self.x1} {NOISE}")
        return self.d_alpha * x0 + self.d_beta * x1 + self.d_gamma * w


def _endpoints(path: ir.Path) -> tuple[str, str]:
    if not path.target.endswith("_t") or len(path.target) < 3:
        raise SpecError(
            f"a path defines a name ending in _t such as x_t, found {path.target}", path.span
        )
    base = path.target[:-2]
    return base + "0", base + "1"


def path_velocity(
    path: ir.Path, lets: Mapping[str, ir.Let], *, time: str = "t", simplify: bool = True
) -> PathKernel:
    """Split ``path`` into α, β, γ, check its ends, and differentiate (module docstring).

    ``simplify = False`` skips sympy's (slow) simplification of the coefficients, for checking.
    """
    shorten = (lambda e: tidy(e, time=time)) if simplify else (lambda e: e)
    x0n, x1n = _endpoints(path)
    t = symbol(time, time=time)
    syms = {n: sp.Symbol(n, real=True) for n in (x0n, x1n, NOISE)}
    coef = dict.fromkeys(syms, sp.Integer(0))
    for sign, term in split_terms(path.value):
        value = sign * to_sympy(term, lets, time=time, symbols=syms)
        parts = {n: sp.diff(value, s) for n, s in syms.items()}
        used = [n for n, p in parts.items() if p != 0]
        rest = value - sum(parts[n] * syms[n] for n in used)
        rest = sp.Integer(0) if is_zero(rest) else rest
        if len(used) != 1 or rest != 0 or parts[used[0]].has(*syms.values()):
            raise SpecError(
                f"a path must be linear in {x0n}, {x1n} and {NOISE}, each term a coefficient "
                f"of {time} times one of them; found {to_text(value)}",
                term.span,
            )
        coef[used[0]] += parts[used[0]]
    alpha, beta, gamma = (shorten(coef[n]) for n in (x0n, x1n, NOISE))
    _check_end(path, alpha, beta, t, 0, x0n, x1n)
    _check_end(path, beta, alpha, t, 1, x1n, x0n)
    return PathKernel(
        path.target,
        x0n,
        x1n,
        t,
        alpha,
        beta,
        gamma,
        *(shorten(sp.diff(c, t)) for c in (alpha, beta, gamma)),
    )


def _check_end(
    path: ir.Path,
    own: sp.Expr,
    other: sp.Expr,
    t: sp.Symbol,
    at: int,
    own_name: str,
    other_name: str,
) -> None:
    """At t = ``at`` the path must be ``own_name`` (+ noise): coefficient 1, the other's 0.

    At t = 1 the source x0 may remain as a little noise, |α(1)| < 1: Lipman et al. 2023's path
    (1 - (1 - σ_min) t) x0 + t x1 ends at x1 + σ_min x0 with x0 ~ N(0, I).
    """
    c_own, c_other = own.subs(t, at), other.subs(t, at)
    if not (c_own.is_number and c_other.is_number):
        c_own, c_other = tidy(c_own, time=str(t)), tidy(c_other, time=str(t))
    if not (c_own.is_number and c_other.is_number):
        raise SpecError(f"the path's coefficients must be functions of {t} only", path.span)
    other_ok = abs(float(c_other)) < 1 if at == 1 else abs(float(c_other)) <= 1e-9
    if abs(float(c_own) - 1) > 1e-9 or not other_ok:
        raise SpecError(
            f"a path must start at {path.target[:-2]}0 and end at {path.target[:-2]}1: at "
            f"{t} = {at} expected {own_name} (+ noise), found {to_text(c_own)}*{own_name} + "
            f"{to_text(c_other)}*{other_name}",
            path.value.span,
        )
