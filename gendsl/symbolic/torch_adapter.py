"""Torch callables from derived closed forms, and the process object a kernel describes.

This is the only module of :mod:`gendsl.symbolic` that imports torch; the front end never loads
it.  Every callable is vectorised over a tensor ``t`` and returns a tensor of ``t``'s shape,
device and dtype.  The closed forms come either from the stored text of
:mod:`gendsl.symbolic.closed_forms` (read by :mod:`gendsl.symbolic.safe_expr`, no sympy) or from
a sympy kernel (``sympy.lambdify``); a stored text that does not read back is derived again.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from gendsl.processes import VESDE, VPSDE, AffineSDE, SubVPSDE
from gendsl.processes.base import Process
from gendsl.symbolic.closed_forms import PATH_NAMES, PathForms, SDEForms
from gendsl.symbolic.safe_expr import Unreadable, compile_expr

__all__ = ["TORCH_FUNCTIONS", "stored_fn", "to_process", "torch_fn", "torch_fns"]

TorchFn = Callable[[Tensor], Tensor]

#: :data:`gendsl.symbolic.safe_expr.FUNCTIONS` in torch.
TORCH_FUNCTIONS: dict[str, Callable[[Tensor], Tensor]] = {
    "sqrt": torch.sqrt,
    "exp": torch.exp,
    "log": torch.log,
    "sin": torch.sin,
    "cos": torch.cos,
    "tan": torch.tan,
    "tanh": torch.tanh,
    "sinh": torch.sinh,
    "cosh": torch.cosh,
    "atan": torch.atan,
    "asin": torch.asin,
    "acos": torch.acos,
    "asinh": torch.asinh,
    "acosh": torch.acosh,
    "atanh": torch.atanh,
    "Abs": torch.abs,
    "erf": torch.erf,
    "erfc": torch.erfc,
}


def _lift(value: Any, t: Tensor) -> Tensor:
    return (
        value
        if isinstance(value, Tensor)
        else torch.as_tensor(value, dtype=t.dtype, device=t.device)
    )


def _broadcast(fn: Callable[[Tensor], Any]) -> TorchFn:
    def call(time: Tensor) -> Tensor:
        return torch.as_tensor(fn(time), dtype=time.dtype, device=time.device).expand_as(time)

    return call


def stored_fn(text: str) -> TorchFn:
    """A stored closed form (:mod:`gendsl.symbolic.safe_expr`) as a torch function of ``t``;
    :class:`~gendsl.symbolic.safe_expr.Unreadable` when the text is outside that language."""
    return _broadcast(compile_expr(text, TORCH_FUNCTIONS, lift=_lift))


def torch_fn(e: Any, t: Any) -> TorchFn:
    """The sympy expression ``e(t)`` as a torch function (``sympy.lambdify``)."""
    import sympy as sp

    return _broadcast(sp.lambdify(t, sp.N(e, 17), modules="torch"))  # numbers as floats


def _lambdified(kernel: Any) -> dict[str, TorchFn]:
    """A sympy kernel (:class:`~gendsl.symbolic.path.PathKernel` or an SDE's) as torch
    functions of ``t`` (imported here: sympy loads only when a kernel must be lambdified)."""
    import sympy as sp

    from gendsl.symbolic.path import PathKernel

    if isinstance(kernel, PathKernel):
        return {n: torch_fn(getattr(kernel, n), kernel.t) for n in PATH_NAMES}
    out = {"f": torch_fn(kernel.f, kernel.t), "g": torch_fn(kernel.g, kernel.t)}
    if kernel.a is not None and kernel.s2 is not None:
        out["a"] = torch_fn(kernel.a, kernel.t)
        out["s"] = torch_fn(sp.sqrt(kernel.s2), kernel.t)
    return out


def torch_fns(kernel: SDEForms | PathForms | Any) -> dict[str, TorchFn]:
    """The closed forms as torch functions of ``t``, from stored forms or a sympy kernel.

    For an SDE kernel: ``f``, ``g`` and, when closed form, ``a`` and ``s`` (without them
    :class:`~gendsl.processes.AffineSDE` integrates the kernel itself).  For a path: ``alpha``,
    ``beta``, ``gamma`` and their time derivatives ``d_alpha``, ``d_beta``, ``d_gamma``.
    """
    if not isinstance(kernel, SDEForms | PathForms):
        return _lambdified(kernel)
    try:
        return {n: stored_fn(e) for n, e in kernel.exprs.items() if e is not None}
    except Unreadable:
        return _lambdified(kernel.kernel)


def to_process(kernel: SDEForms | Any, *, t_min: float | None = None) -> Process:
    """The process of ``kernel`` (stored forms or a sympy kernel): VPSDE, SubVPSDE or VESDE
    when recognised, else AffineSDE.

    ``t_min`` (the smallest time trained and sampled) defaults to each class's own default,
    and to 1e-3 T for an AffineSDE.
    """
    extra = {} if t_min is None else {"t_min": t_min}
    if kernel.kind == "vp":
        return VPSDE(**kernel.params, **extra)
    if kernel.kind == "subvp":
        return SubVPSDE(**kernel.params, **extra)
    if kernel.kind == "ve":
        return VESDE(**kernel.params, **extra)
    fns = torch_fns(kernel)
    return AffineSDE(
        fns["f"],
        fns["g"],
        fns.get("a"),
        fns.get("s"),
        t_min=1e-3 * kernel.T if t_min is None else t_min,
        T=kernel.T,
    )
