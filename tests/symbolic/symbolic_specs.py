"""Shared helpers of the symbolic tests: parse a model body and pick its statements."""

from __future__ import annotations

from gendsl.frontend import ast
from gendsl.frontend.parser import parse


def model_of(body: str, data: str = "data x : real[2]") -> ast.Model:
    """The single model of ``model m { <data> <body> }``."""
    return parse(f"model m {{\n  {data}\n{body}\n}}\n", "spec.gen").models[0]


def lets_of(model: ast.Model) -> dict[str, ast.Let]:
    """The model's lets by name."""
    return {s.name: s for s in model.body if isinstance(s, ast.Let)}


def first(model: ast.Model, kind: type) -> ast.Node:
    """The first statement of type ``kind``."""
    return next(s for s in model.body if isinstance(s, kind))
