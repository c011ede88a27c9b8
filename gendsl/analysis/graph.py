"""The model graph: which quantity feeds which, cycle detection, evaluation order.

Nodes are variables (``kind``: observed, latent, derived, condition, noised, noise), networks
(``net``), flows (``flow``), the process (``process``), ``predict``, the time ``t`` (``time``)
and the ``loss``.  Each edge points from a parent to the child it feeds and remembers the
statement that made it (``stmt``: its index in the model body); edges of the guide carry
``guide=True``.
"""

from __future__ import annotations

import networkx as nx

from gendsl.source import Span

__all__ = ["ROLE_KIND", "find_cycle", "topological"]

#: The node kind of each variable role.
ROLE_KIND = {
    "data": "observed",
    "latent": "latent",
    "derived": "derived",
    "condition": "condition",
    "noised": "noised",
    "noise": "noise",
}


def find_cycle(graph: nx.DiGraph) -> tuple[list[str], Span] | None:
    """A cycle among the generative (non-guide) edges and the span of the statement closing it.

    The closing statement is the latest one (in source order) among the cycle's edges; the
    returned names start at the child of that statement, e.g. ``["x", "z", "x"]``.
    """
    gen = nx.DiGraph()
    gen.add_edges_from((u, v, d) for u, v, d in graph.edges(data=True) if not d.get("guide"))
    try:
        edges = nx.find_cycle(gen)
    except nx.NetworkXNoCycle:
        return None
    edges = [(u, v) for u, v, *_ in edges]
    last = max(range(len(edges)), key=lambda i: gen.edges[edges[i]]["stmt"])
    order = edges[last + 1 :] + edges[: last + 1]
    names = [order[0][0]] + [v for _, v in order]
    return names, gen.edges[edges[last]]["span"]


def topological(graph: nx.DiGraph, names: list[str], *, guide: bool) -> list[str]:
    """``names`` in an order where every parent comes first (ties keep the given order)."""
    sub = nx.DiGraph()
    sub.add_nodes_from(names)
    sub.add_edges_from(
        (u, v) for u, v, d in graph.edges(data=True) if bool(d.get("guide")) == guide
    )
    rank = {n: i for i, n in enumerate(names)}
    order = nx.lexicographical_topological_sort(sub, key=lambda n: rank.get(n, -1))
    return [n for n in order if n in rank]
