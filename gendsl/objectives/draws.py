"""Random draws that ``torch.compile`` can trace with symbolic sizes.

``torch.rand(n, generator=None)`` with a symbolic ``n`` fails under dynamo (torch 2.x: the fake
tensor of a draw with a ``generator`` argument needs concrete sizes), while the same call
without the argument traces.  These wrappers pass ``generator`` only when one is given, so a
loss drawn from the global stream compiles with dynamic batch sizes and a loss drawn from an
explicit generator behaves exactly as before.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

__all__ = ["rand", "randint", "randn", "randn_like"]


def _with_generator(generator: torch.Generator | None, kwargs: dict[str, Any]) -> dict[str, Any]:
    return kwargs if generator is None else {**kwargs, "generator": generator}


def rand(*size: Any, generator: torch.Generator | None = None, **kwargs: Any) -> Tensor:
    """``torch.rand`` (uniform on [0, 1)), traceable with symbolic sizes."""
    return torch.rand(*size, **_with_generator(generator, kwargs))


def randn(*size: Any, generator: torch.Generator | None = None, **kwargs: Any) -> Tensor:
    """``torch.randn`` (standard normal), traceable with symbolic sizes."""
    return torch.randn(*size, **_with_generator(generator, kwargs))


def randint(*args: Any, generator: torch.Generator | None = None, **kwargs: Any) -> Tensor:
    """``torch.randint(low, high, size)`` or ``torch.randint(high, size)``, traceable with
    symbolic sizes."""
    return torch.randint(*args, **_with_generator(generator, kwargs))


def randn_like(x: Tensor, *, generator: torch.Generator | None = None) -> Tensor:
    """Standard normal noise of ``x``'s shape, device and dtype, contiguous: the same draws as
    :func:`randn` of that shape (``torch.randn_like`` without a ``generator``)."""
    if generator is None:
        return torch.randn_like(x, memory_format=torch.contiguous_format)
    return torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
