"""Shared helpers of the symbolic tests: parse a model body and pick its statements (as IR)."""

from __future__ import annotations

from dataclasses import dataclass

from gendsl import ir
from gendsl.analysis.to_ir import CONSUMED, statement_to_ir
from gendsl.frontend.parser import parse


@dataclass(frozen=True)
class Body:
    """A parsed model's statements, converted to IR (names resolved by the library only)."""

    body: tuple[ir.Stmt, ...]


def model_of(body: str, data: str = "data x : real[2]") -> Body:
    """The statements of the single model of ``model m { <data> <body> }``."""
    model = parse(f"model m {{\n  {data}\n{body}\n}}\n", "spec.gen").models[0]
    return Body(tuple(statement_to_ir(s) for s in model.body if isinstance(s, CONSUMED)))


def lets_of(model: Body) -> dict[str, ir.Let]:
    """The model's lets by name."""
    return {s.name: s for s in model.body if isinstance(s, ir.Let)}


def first(model: Body, kind: type) -> ir.Node:
    """The first statement of type ``kind``."""
    return next(s for s in model.body if isinstance(s, kind))
