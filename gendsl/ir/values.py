"""Option values of the IR as plain Python.

Option values (``loss elbo(beta = 4, anneal = linear(0, 1, steps = 100))``, flow layers'
arguments, ``guidance classifier_free(scale = 3)``) are converted to plain Python by
:func:`to_value`: numbers stay numbers, ``true``/``false`` become ``bool``, strings and other
bare names become ``str``, lists become ``list``, and calls become :class:`~gendsl.ir.types.Opt`.
"""

from __future__ import annotations

from typing import Any

from gendsl.ir import nodes as ir
from gendsl.ir.types import Opt

__all__ = ["to_value"]


def to_value(e: ir.Expr | ir.Option) -> Any:
    """Convert an option's IR to a plain Python value (see the module docstring)."""
    if isinstance(e, ir.Num | ir.Str):
        return e.value
    if isinstance(e, ir.Name):
        return {"true": True, "false": False}.get(e.id, e.id)
    if isinstance(e, ir.List):
        return [to_value(i) for i in e.items]
    if isinstance(e, ir.Neg) and isinstance(e.operand, ir.Num):
        return -e.operand.value
    if isinstance(e, ir.Call | ir.Option):
        name = e.func if isinstance(e, ir.Call) else e.name
        return Opt(
            name,
            tuple(to_value(a) for a in e.args),
            {k.name: to_value(k.value) for k in e.kwargs},
            e.span,
        )
    raise TypeError(f"not an option value: {e!r}")
