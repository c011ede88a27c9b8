"""Checks of how a model uses its variables, run on the model graph once it is built.

- A latent that is sampled but that nothing in the model depends on is a mistake (a typo in a
  ``given``, a forgotten argument of the decoder): it would be trained through the guide and the
  KL alone, and never shape the data.
- A family whose plugin says ``one_data_variable`` (every family but the latent-variable one)
  generates exactly one ``data`` variable; the back end would refuse a second one only when
  training starts.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import networkx as nx

from gendsl.families import table as families
from gendsl.frontend import ast
from gendsl.ir import Variable
from gendsl.source import Span

__all__ = ["one_data_variable", "path_source", "unused_latents"]

Report = Callable[[str, Span], None]


def _generated(graph: nx.DiGraph, name: str) -> bool:
    return any(not d.get("guide") for _, _, d in graph.in_edges(name, data=True))


def unused_latents(
    variables: Mapping[str, Variable],
    sampled: Mapping[str, Span],
    graph: nx.DiGraph,
    report: Report,
) -> None:
    """Report each sampled latent with no generative edge out of it (guide edges do not count),
    at its sampling statement.  Nothing is reported while a data variable is not generated at
    all: that error (reported elsewhere) says it already."""
    data = [v.name for v in variables.values() if v.role == "data" and v.name in graph]
    if not data or not all(_generated(graph, d) for d in data):
        return
    for v in variables.values():
        if v.role != "latent" or v.name not in sampled or v.name not in graph:
            continue
        if any(not d.get("guide") for _, _, d in graph.out_edges(v.name, data=True)):
            continue
        report(
            f"latent '{v.name}' is sampled but never used: nothing in the model depends on it; "
            f"give it to what it generates (e.g. '{data[0]} | {v.name} ~ ...' or a network "
            f"call such as 'dec({v.name})') or remove it",
            sampled[v.name],
        )


def path_source(model: ast.Model) -> str | None:
    """The source ``x0`` of the model's ``path x_t = ...`` (None without a path)."""
    for stmt in model.body:
        if isinstance(stmt, ast.Path) and stmt.target.endswith("_t"):
            return stmt.target[:-2] + "0"
    return None


def one_data_variable(
    variables: Mapping[str, Variable], family: str, report: Report, *, source: str | None = None
) -> None:
    """Report every ``data`` variable after the first in a family that generates one (its
    plugin's ``one_data_variable``), in the plugin's ``words``.  ``source``: a path's source,
    which may be data too (a transport between two data sets)."""
    plugin = families.family(family)
    if not plugin.one_data_variable:
        return
    data = [v for v in variables.values() if v.role == "data" and v.name != source]
    for extra in data[1:]:
        report(
            f"{plugin.words} generates exactly one data variable, but '{extra.name}' is a second "
            f"one (the first is '{data[0].name}' on line {data[0].span.line}); make it a "
            f"condition ('condition {extra.name} : ...') or remove it",
            extra.span,
        )
