"""Closed forms of a declared DDPM forward chain.

``chain x[k] ~ Normal(sqrt(1 - beta[k]) * x[k-1], sqrt(beta[k])), k in 1..K`` is the Gaussian
AR(1) chain of Ho et al. 2020 ("Denoising Diffusion Probabilistic Models", eq. 2), whose k-step
marginal is

    q(x_k | x_0) = N(√ᾱ_k x_0, (1 − ᾱ_k) I),    ᾱ_k = ∏_{i=1}^{k} (1 − β_i)    (eq. 4).

Any step Normal(c_k x[k-1], σ_k) with c_k² + σ_k² = 1 is of this form with β_k = σ_k².
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import sympy as sp

from gendsl import ir
from gendsl.errors import SpecError
from gendsl.ir.printer import format_expr
from gendsl.symbolic.expr import VectorAccess, is_zero, lambdify_np, symbol, to_sympy, to_text
from gendsl.symbolic.tidy import tidy

__all__ = ["ChainKernel", "chain_kernel"]


@dataclass
class ChainKernel:
    """β_k and ᾱ_k of a chain for k = 1..K, with β_k as a sympy expression of ``k``."""

    var: str
    k: sp.Symbol
    K: int
    beta: sp.Expr
    betas: np.ndarray
    alpha_bar: np.ndarray

    @property
    def marginal_text(self) -> str:
        """q(x_k | x_0) in words (Ho et al. 2020, eq. 4)."""
        x = self.var
        return (
            f"q({x}_k | {x}_0) = N(sqrt(abar_k) {x}_0, (1 - abar_k) I), "
            f"abar_k = prod_(i=1..k) (1 - beta_i)"
        )


def _integer(e: ir.Expr, lets: Mapping[str, ir.Let], what: str) -> int:
    value = to_sympy(e, lets)
    if not value.is_Integer:
        raise SpecError(f"the chain's {what} must be an integer, found {to_text(value)}", e.span)
    return int(value)


def _step(chain: ir.Chain) -> tuple[ir.Expr, ir.Expr]:
    """The loc and scale expressions of the chain's Normal step."""
    dist = chain.dist
    if dist.func != "Normal":
        raise SpecError(
            f"expected a Gaussian step Normal(sqrt(1 - beta[{chain.index}]) * "
            f"{chain.var}[{chain.index}-1], sqrt(beta[{chain.index}])), found {dist.func}",
            dist.func_span,
        )
    named = {kw.name: kw.value for kw in dist.kwargs}
    args = list(dist.args) + [named.pop(n) for n in ("loc", "scale") if n in named]
    if named or len(args) != 2:
        raise SpecError("Normal takes loc and scale", dist.span)
    return args[0], args[1]


def _check_accesses(accesses: list[VectorAccess], k: sp.Symbol, ks: np.ndarray) -> None:
    for acc in accesses:
        idx = lambdify_np(acc.index, k)(ks)
        bad = (idx < 1) | (idx > acc.length) | (idx != np.round(idx))
        if np.any(bad):
            at = int(ks[np.argmax(bad)])
            raise SpecError(
                f"index {format_expr(acc.node.index)} = {idx[np.argmax(bad)]:g} at k = {at} is "
                f"outside {acc.name}[1..{acc.length}] (indices start at 1)",
                acc.node.span,
            )


def chain_kernel(
    chain: ir.Chain, lets: Mapping[str, ir.Let], *, simplify: bool = True
) -> ChainKernel:
    """β_k, ᾱ_k of a variance-preserving Gaussian chain, or a located SpecError.

    ``simplify = False`` leaves β_k as written (sympy's simplification is slow), for checking.
    """
    if chain.range_var != chain.index:
        raise SpecError(
            f"the range must be over the chain's index {chain.index}, found {chain.range_var}",
            chain.span,
        )
    lo, hi = _integer(chain.lo, lets, "first step"), _integer(chain.hi, lets, "last step")
    if lo != 1 or hi < 1:
        raise SpecError(
            f"a chain runs over {chain.index} in 1..K, found {lo}..{hi}",
            chain.lo.span.to(chain.hi.span),
        )
    k = symbol(chain.index)
    loc_e, scale_e = _step(chain)
    accesses: list[VectorAccess] = []
    kw = {"symbols": {chain.index: k}, "state": (chain.var, chain.index), "accesses": accesses}
    loc, scale = to_sympy(loc_e, lets, **kw), to_sympy(scale_e, lets, **kw)
    prev = sp.Symbol(f"{chain.var}_prev", real=True)
    c = sp.diff(loc, prev)
    if c.has(prev) or not is_zero(loc - c * prev) or c == 0:
        raise SpecError(
            f"the mean of a chain step must be c * {chain.var}[{chain.index}-1], found "
            f"{format_expr(loc_e)}",
            loc_e.span,
        )
    if scale.has(prev):
        raise SpecError(f"the scale of a chain step must not depend on {chain.var}", scale_e.span)
    ks = np.arange(1, hi + 1, dtype=np.float64)
    _check_accesses(accesses, k, ks)
    c_k = lambdify_np(c, k)(ks)
    betas = lambdify_np(sp.expand(scale**2), k)(ks)  # sqrt(b)^2 = b: a negative b shows as such
    if not (np.all(np.isfinite(betas)) and np.all((betas > 0) & (betas < 1))):
        i = int(np.argmax(~((betas > 0) & (betas < 1))))
        raise SpecError(
            f"beta_k = scale^2 must lie in (0, 1), found {betas[i]:g} at k = {i + 1}", scale_e.span
        )
    if not np.allclose(c_k**2 + betas, 1.0, rtol=0, atol=1e-9):
        i = int(np.argmax(np.abs(c_k**2 + betas - 1)))
        raise SpecError(
            f"not a variance-preserving step: expected Normal(sqrt(1 - beta[k]) * "
            f"{chain.var}[k-1], sqrt(beta[k])) (Normal takes a standard deviation), found "
            f"mean coefficient^2 + scale^2 = {c_k[i] ** 2 + betas[i]:g} at k = {i + 1}",
            chain.dist.span,
        )
    beta = tidy(scale**2) if simplify else scale**2
    return ChainKernel(chain.var, k, hi, beta, betas, np.cumprod(1 - betas))
