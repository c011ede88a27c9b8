"""Helpers the families' derivations share: option values written as the spec writes them."""

from __future__ import annotations

from typing import Any

from gendsl.ir import Opt

__all__ = ["opt_text", "option"]


def opt_text(o: Any) -> str:
    """An option value as the spec would write it: ``ema(decay = 0.99)``, ``[c]``, ``0.5``."""
    if o is None:
        return "default"
    if isinstance(o, list):
        return "[" + ", ".join(opt_text(v) for v in o) + "]"
    if not isinstance(o, Opt):
        return str(o)
    parts = [opt_text(a) for a in o.args] + [f"{k} = {opt_text(v)}" for k, v in o.kwargs.items()]
    return f"{o.name}({', '.join(parts)})" if parts else o.name


def option(o: Opt | None, name: str, default: Any) -> Any:
    """The keyword option ``name`` of ``o`` (``default`` when ``o`` is ``None`` or omits it)."""
    return o.kwargs.get(name, default) if o is not None else default
