"""The Gaussian perturbation kernel of a linear SDE declared in a spec.

For ``sde dx = F dt + G dw`` with F = f(t) x and G = g(t) independent of x, the solution started
at x(0) = x0 is Gaussian, x_t | x0 ~ N(a(t) x0, s(t)² I), with

    a(t) = exp(∫₀ᵗ f(u) du),    s(t)² = a(t)² ∫₀ᵗ g(u)² / a(u)² du

(Särkkä & Solin 2019, "Applied Stochastic Differential Equations", eqs. 6.2-6.3; Song et al.
2021, "Score-Based Generative Modeling through SDEs", appendix B).  sympy closes the integrals
where it can; otherwise they are computed by the trapezoid rule on a fine grid.  The kernel is
then matched against the VP, sub-VP and VE SDEs of Song et al. 2021 (eqs. 9, 11, 12).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np
import sympy as sp

from gendsl import ir
from gendsl.errors import SpecError
from gendsl.symbolic.expr import is_zero, lambdify_np, symbol, to_sympy, to_text
from gendsl.symbolic.store import remembered
from gendsl.symbolic.tidy import tidy

__all__ = [
    "Kernel",
    "check_sde",
    "coefficients",
    "integrate_a",
    "integrate_s2",
    "recognise",
    "sde_kernel",
    "split_terms",
]

NumFn = Callable[[np.ndarray], np.ndarray]

#: Points of the quadrature grid used when sympy cannot close an integral.
GRID_SIZE = 20001

_SSM_HINT = "no closed-form Gaussian perturbation kernel"
_SSM_ADVICE = (
    "denoising score matching needs that kernel; without one, learn the score by sliced score "
    "matching (Song et al. 2019), e.g. an energy model with loss ssm(...)"
)


@dataclass
class Kernel:
    """The forward SDE dx = f(t) x dt + g(t) dw on [0, T] and its kernel N(a(t) x0, s(t)² I).

    ``f``, ``g`` are sympy expressions in ``t``; ``a``, ``s2`` and ``log_snr`` (= log a²/s²) are
    sympy expressions when closed form, else ``None`` (then ``a_fn``/``s_fn`` interpolate a
    quadrature).  ``kind`` is ``vp``, ``subvp``, ``ve`` or ``affine`` and ``params`` holds the
    recognised parameters (``beta_min``/``beta_max`` or ``sigma_min``/``sigma_max``).
    """

    var: str
    t: sp.Symbol
    T: float
    f: sp.Expr
    g: sp.Expr
    a: sp.Expr | None
    s2: sp.Expr | None
    log_snr: sp.Expr | None
    f_fn: NumFn
    g_fn: NumFn
    a_fn: NumFn
    s_fn: NumFn
    kind: str = "affine"
    params: dict[str, float] = field(default_factory=dict)

    @property
    def closed_form(self) -> dict[str, bool]:
        """Which of a, s² and the log-SNR sympy closed (f and g always are)."""
        return {
            "a": self.a is not None,
            "s2": self.s2 is not None,
            "log_snr": self.log_snr is not None,
        }


# --------------------------------------------------------------------------- splitting the rhs


def split_terms(e: ir.Expr) -> list[tuple[int, ir.Expr]]:
    """The top-level terms of a sum, each with its sign: ``a - b + c`` → [(+a), (-b), (+c)]."""
    terms: list[tuple[int, ir.Expr]] = []
    stack = [(1, e)]
    while stack:  # a loop, not a recursion: a flat sum may have hundreds of terms
        sign, node = stack.pop()
        if isinstance(node, ir.BinOp) and node.op in "+-":
            stack.append((-sign if node.op == "-" else sign, node.right))
            stack.append((sign, node.left))
        elif isinstance(node, ir.Neg):
            stack.append((-sign, node.operand))
        else:
            terms.append((sign, node))
    return terms


def _differentials(term: ir.Expr, allowed: set[str]) -> None:
    for node in ir.walk(term):
        if isinstance(node, ir.Derivative):  # the divisor of d(E)/dX is the differential dX
            name, span = "d" + node.time, node.time_span
        elif isinstance(node, ir.Name):
            name, span = node.id, node.span
        else:
            continue
        if name.startswith("d") and len(name) > 1 and name not in allowed:
            raise SpecError(
                f"unexpected differential '{name}': an sde is written F * dt + G * dw", span
            )


def coefficients(
    sde: ir.SDE, lets: Mapping[str, ir.Let]
) -> tuple[sp.Symbol, sp.Symbol, sp.Expr, sp.Expr]:
    """(x, t, f(t), g(t)) of ``dx = f(t) x dt + g(t) dw``, or a SpecError at the bad term.

    Each top-level term must be linear in exactly one of dt, dw; the dt terms must be affine in
    x with no offset and the dw terms free of x.
    """
    if not (sde.differential.startswith("d") and len(sde.differential) > 1):
        raise SpecError(
            f"expected a differential such as dx, found {sde.differential}", sde.differential_span
        )
    name, time = sde.differential[1:], sde.time
    x, t = symbol(name), symbol(time, time=time)
    dt, dw = sp.Symbol("d" + time), sp.Symbol("dw")
    allowed = {"d" + time, "dw", *lets}
    drift, diffusion = sp.Integer(0), sp.Integer(0)
    for sign, term in split_terms(sde.rhs):
        _differentials(term, allowed)
        value = sign * to_sympy(term, lets, time=time, symbols={name: x, "d" + time: dt, "dw": dw})
        c_dt, c_dw = sp.diff(value, dt), sp.diff(value, dw)
        if c_dt == 0 and c_dw == 0:
            raise SpecError(
                f"this term has neither d{time} nor dw (found {to_text(value)})", term.span
            )
        if (
            not is_zero(value - c_dt * dt - c_dw * dw)
            or c_dt.has(dt, dw)
            or c_dw.has(dt, dw)
            or (c_dt != 0 and c_dw != 0)
        ):
            raise SpecError(
                f"each term of an sde must be (coefficient) * d{time} or (coefficient) * dw, "
                f"found {to_text(value)}",
                term.span,
            )
        if c_dt != 0:
            if not is_zero(sp.diff(c_dt, x, 2)) or sp.diff(c_dt, x).has(x):
                raise SpecError(
                    f"{_SSM_HINT}: drift must be affine in {name} (found {to_text(c_dt)}); "
                    f"{_SSM_ADVICE}",
                    term.span,
                )
            if not is_zero(c_dt.subs(x, 0)):
                raise SpecError(
                    f"unsupported drift term {to_text(c_dt)}: the drift must be f({time}) * "
                    f"{name}; a part free of {name} (an offset h({time})) is not supported",
                    term.span,
                )
            drift += c_dt
        else:
            if c_dw.has(x):
                raise SpecError(
                    f"{_SSM_HINT}: the diffusion must not depend on {name} (found "
                    f"{to_text(c_dw)}); {_SSM_ADVICE}",
                    term.span,
                )
            diffusion += c_dw
    return x, t, sp.diff(drift, x), diffusion


# --------------------------------------------------------------------------- the integrals


def _usable(e: sp.Expr, t: sp.Symbol) -> bool:
    """A closed form sympy really closed: no unevaluated integral, finite on a test grid."""
    if e.has(sp.Integral) or e.has(sp.Piecewise) or e.free_symbols - {t}:
        return False
    try:
        values = lambdify_np(e, t)(np.linspace(0.0, 1.0, 11))
    except (NameError, TypeError, ValueError):  # special functions numpy cannot evaluate
        return False
    return bool(np.all(np.isfinite(values)))


def integrate_a(f: sp.Expr, t: sp.Symbol) -> sp.Expr | None:
    """log a(t) = ∫₀ᵗ f(u) du in closed form, or None when sympy cannot close it."""
    u = sp.Dummy("u", nonnegative=True)
    if sp.count_ops(f) > 200:
        return None
    try:
        A = sp.integrate(f.subs(t, u), (u, 0, t), meijerg=False, risch=False)
    except (NotImplementedError, ValueError, TypeError):
        return None
    A = tidy(A, time=str(t))
    return A if _usable(A, t) else None


def integrate_s2(A: sp.Expr, g: sp.Expr, t: sp.Symbol) -> sp.Expr | None:
    """∫₀ᵗ g(u)² e^{-2A(u)} du in closed form, or None.

    First an ansatz: the integrand is fitted (least squares on a grid, then rational
    coefficients checked on fresh points) as a combination of d/du of e^{±2A}, e^{±A}, A and u,
    which closes VP, sub-VP and the polynomial-rate schedules in milliseconds.  When f = 0 (VE
    type) sympy integrates g² directly.
    """
    integrand = g**2 * sp.exp(-2 * A)
    basis = [sp.exp(-2 * A), sp.exp(2 * A), sp.exp(-A), sp.exp(A), A, t]
    basis = [b for b in basis if b.has(t)]
    found = _fit(integrand, basis, t)
    if found is not None:
        return found
    if A == 0 and sp.count_ops(g) <= 200:
        u = sp.Dummy("u", nonnegative=True)
        try:
            closed = sp.integrate((g**2).subs(t, u), (u, 0, t), meijerg=False, risch=False)
        except (NotImplementedError, ValueError, TypeError):
            return None
        closed = tidy(closed, time=str(t))
        return closed if _usable(closed, t) else None
    return None


def _fit(integrand: sp.Expr, basis: list[sp.Expr], t: sp.Symbol) -> sp.Expr | None:
    """Σ c_j (b_j(t) − b_j(0)) when integrand = Σ c_j b_j'(t) exactly on test points."""
    if not basis:
        return None
    fit_t = np.linspace(0.05, 0.95, 17)
    check_t = np.array([0.0123, 0.3377, 0.61, 0.8891, 1.0])
    y = lambdify_np(integrand, t)
    derivs = [lambdify_np(sp.diff(b, t), t) for b in basis]
    M = np.stack([d(fit_t) for d in derivs], axis=1)
    target = y(fit_t)
    if not (np.all(np.isfinite(M)) and np.all(np.isfinite(target))):
        return None
    keep = np.ones(len(basis), dtype=bool)
    for _ in range(2):  # fit, drop the columns that contribute nothing, refit
        coef = np.zeros(len(basis))
        norms = np.linalg.norm(M[:, keep], axis=0) + 1e-300
        coef[keep] = np.linalg.lstsq(M[:, keep] / norms, target, rcond=None)[0] / norms
        keep = np.abs(coef) * np.max(np.abs(M), axis=0) > 1e-6 * np.max(np.abs(target))
    exact = [
        sp.nsimplify(c, rational=True, tolerance=1e-10) if k else 0
        for c, k in zip(coef, keep, strict=True)
    ]
    approx = sum(c * d(check_t) for c, d in zip(exact, derivs, strict=True))
    truth = y(check_t)
    if not np.all(np.abs(np.asarray(approx, float) - truth) <= 1e-9 * np.abs(truth) + 1e-300):
        return None
    closed = sum(c * (b - b.subs(t, 0)) for c, b in zip(exact, basis, strict=True))
    return tidy(closed, time=str(t))


# --------------------------------------------------------------------------- recognition


def recognise(f_fn: NumFn, g_fn: NumFn, T: float) -> tuple[str, dict[str, float]]:
    """Name the process if (f, g) is VP, sub-VP or VE on [0, 1] (Song et al. 2021, eqs. 9-12).

    VP: f = -β/2, g² = β with β(t) = β_min + t (β_max − β_min); sub-VP: same f and
    g² = β (1 − e^{−2B}), B = ∫₀ᵗ β; VE: f = 0, g² = 2 σ_min² log(σ_max/σ_min) (σ_max/σ_min)^{2t}.
    """
    if T != 1.0:
        return "affine", {}
    t = np.linspace(0.0, 1.0, 101)
    f, g2 = f_fn(t), g_fn(t) ** 2

    def close(a: np.ndarray, b: np.ndarray) -> bool:
        return bool(np.allclose(a, b, rtol=1e-7, atol=1e-9 * (np.max(np.abs(b)) + 1e-12)))

    if not (np.all(np.isfinite(f)) and np.all(np.isfinite(g2))):
        return "affine", {}
    beta_min, beta_max = -2 * f[0], -2 * f[-1]
    beta = beta_min + t * (beta_max - beta_min)
    if beta_min > 0 and beta_max >= beta_min and close(-2 * f, beta):
        params = {"beta_min": float(beta_min), "beta_max": float(beta_max)}
        if close(g2, beta):
            return "vp", params
        B = beta_min * t + 0.5 * t**2 * (beta_max - beta_min)
        if close(g2, -beta * np.expm1(-2 * B)):
            return "subvp", params
    if np.allclose(f, 0.0, atol=1e-12) and g2[0] > 0 and g2[-1] > g2[0]:
        ratio = float(np.sqrt(g2[-1] / g2[0]))
        sigma_min = float(np.sqrt(g2[0] / (2 * np.log(ratio))))
        if close(g2, 2 * sigma_min**2 * np.log(ratio) * ratio ** (2 * t)):
            return "ve", {"sigma_min": sigma_min, "sigma_max": sigma_min * ratio}
    return "affine", {}


# --------------------------------------------------------------------------- the kernel


def _time_range(sde: ir.SDE, lets: Mapping[str, ir.Let]) -> float:
    t0 = to_sympy(sde.t0, lets, time=sde.time)
    t1 = to_sympy(sde.t1, lets, time=sde.time)
    if not (t0.is_number and t1.is_number):
        raise SpecError("the time range of an sde must be numbers", sde.t0.span.to(sde.t1.span))
    if t0 != 0:
        raise SpecError(f"an sde must start at {sde.time} = 0, found {to_text(t0)}", sde.t0.span)
    if not float(t1) > 0:
        raise SpecError(f"the end time must be > 0, found {to_text(t1)}", sde.t1.span)
    return float(t1)


def _interpolant(grid: np.ndarray, values: np.ndarray) -> NumFn:
    def call(x: np.ndarray | float) -> np.ndarray:
        return np.interp(np.asarray(x, dtype=np.float64), grid, values)

    return call


def _cumulative(values: np.ndarray, grid: np.ndarray, *, initial: float) -> np.ndarray:
    """∫ values on ``grid`` from its start, by the trapezoid rule (scipy, imported only when an
    integral has no closed form: it costs a second)."""
    from scipy.integrate import cumulative_trapezoid

    return cumulative_trapezoid(values, grid, initial=initial)


def check_sde(sde: ir.SDE, lets: Mapping[str, ir.Let]) -> tuple[sp.Symbol, sp.Expr, float]:
    """The checks of :func:`sde_kernel` without its integrals (fast, for ``gendsl check``);
    returns (t, g(t), T) for the checks that follow."""
    _, t, _, g = coefficients(sde, lets)
    return t, g, _time_range(sde, lets)


def sde_kernel(sde: ir.SDE, lets: Mapping[str, ir.Let]) -> Kernel:
    """The kernel of ``sde`` (see the module docstring); a located SpecError if it has none."""
    x, t, f, g = coefficients(sde, lets)
    f, g = tidy(f, time=str(t)), tidy(g, time=str(t))
    T = _time_range(sde, lets)
    f_fn, g_fn = lambdify_np(f, t), lambdify_np(g, t)
    A = remembered("log_a", (f,), lambda: integrate_a(f, t), time=str(t))
    s2 = (
        remembered("s2_inner", (A, g), lambda: integrate_s2(A, g, t), time=str(t))
        if A is not None
        else None
    )
    grid = np.linspace(0.0, T, GRID_SIZE)
    if A is not None:
        a = tidy(sp.exp(A), time=str(t))
        a_fn = lambdify_np(a, t)
    else:
        a = None
        log_a = _cumulative(f_fn(grid), grid, initial=0.0)
        a_fn = _interpolant(grid, np.exp(log_a))
    if s2 is not None:
        s2 = tidy(sp.exp(2 * A) * s2, time=str(t))
        s_fn = lambdify_np(sp.sqrt(s2), t)
        log_snr = tidy(2 * A - sp.log(s2), time=str(t))
    else:
        log_a = np.log(a_fn(grid))
        inner = _cumulative(g_fn(grid) ** 2 * np.exp(-2 * log_a), grid, initial=0.0)
        s_fn = _interpolant(grid, np.sqrt(np.exp(2 * log_a) * inner))
        log_snr = None
    kind, params = recognise(f_fn, g_fn, T)
    return Kernel(str(x), t, T, f, g, a, s2, log_snr, f_fn, g_fn, a_fn, s_fn, kind, params)
