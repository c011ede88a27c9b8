"""The symbolic core: SDE kernels, chain closed forms, path velocities and derivation text.

Attributes load their submodule on first use (PEP 562), so ``import gendsl.symbolic`` does not
import sympy: ``gendsl check`` pays for sympy only when a spec has a process or a path.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "ChainKernel",
    "Derivation",
    "Kernel",
    "PathKernel",
    "chain_betas",
    "chain_kernel",
    "derive",
    "path_forms",
    "path_velocity",
    "render",
    "sde_forms",
    "sde_kernel",
    "to_process",
    "to_sympy",
    "torch_fns",
    "validate",
]

_WHERE = {
    "chain_betas": "closed_forms",
    "path_forms": "closed_forms",
    "sde_forms": "closed_forms",
    "ChainKernel": "chain",
    "chain_kernel": "chain",
    "Derivation": "derived",
    "derive": "derived",
    "render": "derived",
    "Kernel": "kernel",
    "sde_kernel": "kernel",
    "PathKernel": "path",
    "path_velocity": "path",
    "to_sympy": "expr",
    "to_process": "torch_adapter",
    "torch_fns": "torch_adapter",
    "validate": "checks",
}


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'gendsl.symbolic' has no attribute {name!r}")
    return getattr(importlib.import_module(f"gendsl.symbolic.{_WHERE[name]}"), name)


def __dir__() -> list[str]:
    return sorted(__all__)
