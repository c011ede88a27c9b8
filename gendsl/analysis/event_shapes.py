"""The per-sample (event) shape of an IR expression, where the checker knows it.

Reductions (``sum``, ``mean``, ``norm``, ``dot``) reduce their argument's event axes and
``x[i]`` indexes its base's first event axis; the back ends read how many event axes there are
from the IR (:class:`~gendsl.ir.Call` ``shape``, :class:`~gendsl.ir.Index` ``rank``), so the
batch axis is never touched.
"""

from __future__ import annotations

from collections.abc import Mapping

from gendsl import ir

__all__ = ["event_shape"]


def _broadcast(left: ir.Shape | None, right: ir.Shape | None) -> ir.Shape | None:
    if left is None or right is None:
        return None
    return left if len(left) >= len(right) else right


def _call_shape(e: ir.Call, variables: Mapping[str, ir.Variable]) -> ir.Shape | None:
    if e.kind == "network":
        return e.shape
    if e.kind == "reduction":
        return ()
    if e.kind == "math" and e.args:
        shapes = [event_shape(a, variables) for a in e.args]
        out = shapes[0]
        for s in shapes[1:]:
            out = _broadcast(out, s)
        return out
    if e.kind == "constructor" and e.func in ("zeros", "ones") and e.args:
        n = e.args[0]
        return (n.value,) if isinstance(n, ir.Num) and isinstance(n.value, int) else None
    return None


def event_shape(e: ir.Expr, variables: Mapping[str, ir.Variable]) -> ir.Shape | None:
    """The per-sample shape of ``e``; ``None`` where it is not known (a let function's
    parameter, a list).  ``variables`` gives the shapes of parameters that name variables (an
    energy's ``x`` in ``energy U(x) = ...``)."""
    if isinstance(e, ir.Num):
        return ()
    if isinstance(e, ir.Name):
        if e.type is not None:
            return e.type.shape
        var = variables.get(e.id) if e.role == "param" else None
        if var is not None:
            return var.type.shape
        return () if e.role in ("time", "constant", "size") else None
    if isinstance(e, ir.Call):
        return _call_shape(e, variables)
    if isinstance(e, ir.BinOp):
        return _broadcast(event_shape(e.left, variables), event_shape(e.right, variables))
    if isinstance(e, ir.Neg):
        return event_shape(e.operand, variables)
    if isinstance(e, ir.Index):
        base = event_shape(e.base, variables)
        return base[1:] if base else None
    return None
