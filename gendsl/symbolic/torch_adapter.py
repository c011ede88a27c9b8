"""Torch callables from derived closed forms, and the process object a kernel describes.

This is the only module of :mod:`gendsl.symbolic` that imports torch; the front end never loads
it.  Every callable is vectorised over a tensor ``t`` and returns a tensor of ``t``'s shape,
device and dtype.
"""

from __future__ import annotations

from collections.abc import Callable

import sympy as sp
import torch
from torch import Tensor

from gendsl.processes import VESDE, VPSDE, AffineSDE, SubVPSDE
from gendsl.processes.base import Process
from gendsl.symbolic.kernel import Kernel
from gendsl.symbolic.path import PathKernel

__all__ = ["to_process", "torch_fn", "torch_fns"]

TorchFn = Callable[[Tensor], Tensor]


def torch_fn(e: sp.Expr, t: sp.Symbol) -> TorchFn:
    """``e(t)`` as a torch function (constants broadcast to ``t``'s shape, device and dtype)."""
    fn = sp.lambdify(t, sp.N(e, 17), modules="torch")  # numbers as floats: no torch.sqrt(2)

    def call(time: Tensor) -> Tensor:
        return torch.as_tensor(fn(time), dtype=time.dtype, device=time.device).expand_as(time)

    return call


def torch_fns(kernel: Kernel | PathKernel) -> dict[str, TorchFn]:
    """The kernel's closed forms as torch functions of ``t``.

    For an SDE kernel: ``f``, ``g`` and, when closed form, ``a`` and ``s`` (without them
    :class:`~gendsl.processes.AffineSDE` integrates the kernel itself).  For a path: ``alpha``,
    ``beta``, ``gamma`` and their time derivatives ``d_alpha``, ``d_beta``, ``d_gamma``.
    """
    if isinstance(kernel, PathKernel):
        names = ("alpha", "beta", "gamma", "d_alpha", "d_beta", "d_gamma")
        return {n: torch_fn(getattr(kernel, n), kernel.t) for n in names}
    out = {"f": torch_fn(kernel.f, kernel.t), "g": torch_fn(kernel.g, kernel.t)}
    if kernel.a is not None and kernel.s2 is not None:
        out["a"] = torch_fn(kernel.a, kernel.t)
        out["s"] = torch_fn(sp.sqrt(kernel.s2), kernel.t)
    return out


def to_process(kernel: Kernel, *, t_min: float | None = None) -> Process:
    """The process of ``kernel``: VPSDE, SubVPSDE or VESDE when recognised, else AffineSDE.

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
