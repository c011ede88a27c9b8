"""Functions run eagerly (not traced) under ``torch.compile``, without loading ``torch._dynamo``
when their module is imported.

``torch.compiler.disable`` imports ``torch._dynamo`` as it decorates: about a second of CPU time
(sympy included) in every ``gendsl sample`` or ``eval`` that never compiles anything.
:func:`eager` defers it: the function runs as itself until :func:`arm` (called by
:func:`gendsl.train.compiled.compile_step` before it compiles) wraps every eager function in
``torch.compiler.disable``; one decorated after that, or once ``torch._dynamo`` is loaded anyway,
is wrapped at once.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import torch

__all__ = ["arm", "eager"]

Fn = TypeVar("Fn", bound=Callable[..., Any])

#: Every eager function and the cell holding what its wrapper calls.
_EAGER: list[tuple[Callable[..., Any], list[Callable[..., Any]]]] = []
_armed = False


def eager(fn: Fn) -> Fn:
    """``fn``, not traced by ``torch.compile`` once :func:`arm` ran (module docstring)."""
    impl: list[Callable[..., Any]] = [fn]
    if _armed or "torch._dynamo" in sys.modules:
        impl[0] = torch.compiler.disable(fn)
    _EAGER.append((fn, impl))

    @functools.wraps(fn)
    def call(*args: Any, **kwargs: Any) -> Any:
        return impl[0](*args, **kwargs)

    return call  # type: ignore[return-value]


def arm() -> None:
    """Wrap every eager function in ``torch.compiler.disable`` (before compiling anything)."""
    global _armed
    _armed = True
    for fn, impl in _EAGER:
        if impl[0] is fn:
            impl[0] = torch.compiler.disable(fn)
