"""The model graph: which quantity feeds which, cycle detection, evaluation order.

Nodes are variables (``kind``: observed, latent, derived, condition, noised, noise), networks
(``net``), flows (``flow``), the process (``process``), ``predict``, the time ``t`` (``time``)
and the ``loss``.  Each edge points from a parent to the child it feeds and remembers the
statement that made it (``stmt``: its index in the model body); edges of the guide carry
``guide=True``.

:func:`build_graph` is the checker's last pass: it builds the graph of a checked
:class:`~gendsl.analysis.context.Context`.
"""

from __future__ import annotations

import networkx as nx

from gendsl.analysis.context import Context, StatementVisitor, is_quantize
from gendsl.families import table as families
from gendsl.frontend import ast
from gendsl.source import Span

__all__ = ["ROLE_KIND", "GraphBuilder", "build_graph", "find_cycle", "topological"]

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


def build_graph(cx: Context) -> nx.DiGraph:
    """The model graph of ``cx`` (the graph pass of the checker)."""
    return GraphBuilder(cx).build()


class GraphBuilder(StatementVisitor):
    """Adds one node per variable, network, flow and the loss, then the edges of each
    statement (``visit_<Statement>(stmt, index)``)."""

    def __init__(self, cx: Context):
        self.cx = cx
        self.g = nx.DiGraph()

    def build(self) -> nx.DiGraph:
        cx, g = self.cx, self.g
        for v in cx.variables.values():
            g.add_node(v.name, kind=ROLE_KIND[v.role])
        for n in cx.net_decls:
            g.add_node(n, kind="net")
        for n in cx.flows:
            g.add_node(n, kind="flow")
        g.add_node("loss", kind="loss")
        for i, stmt in enumerate(cx.model.body):
            self.visit(stmt, i)
        if "t" in g and not g.in_degree("t") and not g.out_degree("t"):
            g.remove_node("t")
        if not g.in_degree("loss"):  # a likelihood-type loss scores the observed variables
            for v in cx.variables.values():
                if v.role == "data":
                    g.add_edge(v.name, "loss", stmt=None, span=v.span, guide=False, in_guide=False)
        return g

    def edge(self, u: str, v: str, i: int, span: Span, guide: bool = False) -> None:
        g = self.g
        if u == v and guide:
            return
        if g.has_edge(u, v) and guide != g.edges[u, v]["guide"]:
            # the same pair in the model and in the guide: keep the generative edge
            g.edges[u, v]["guide"] = False
            g.edges[u, v]["in_guide"] = True
            if not guide:
                g.edges[u, v].update(stmt=i, span=span)
            return
        g.add_edge(u, v, stmt=i, span=span, guide=guide, in_guide=guide)

    def refs(self, e: ast.Node) -> list[str]:
        """The graph's nodes that ``e`` names or calls, in order of first use."""
        out: list[str] = []
        for node in ast.walk(e):
            name = node.id if isinstance(node, ast.Name) else None
            name = node.func if isinstance(node, ast.Call) else name
            if name is not None and name in self.g and name not in out:
                out.append(name)
        return out

    def sample(self, s: ast.Sample, i: int, *, guide: bool) -> None:
        for p in [*(x.id for x in s.given), *self.refs(s.dist)]:
            self.edge(p, s.target, i, s.span, guide=guide)

    def visit_Sample(self, stmt: ast.Sample, i: int) -> None:
        self.sample(stmt, i, guide=False)

    def visit_Guide(self, stmt: ast.Guide, i: int) -> None:
        for s in stmt.body:
            if isinstance(s, ast.Sample):
                self.sample(s, i, guide=True)

    def visit_Assign(self, stmt: ast.Assign, i: int) -> None:
        encoder = is_quantize(stmt)  # e = quantize(enc(x)) infers e from x
        for p in self.refs(stmt.value):
            self.edge(p, stmt.target, i, stmt.span, guide=encoder)

    def process(self, stmt: ast.SDE | ast.Chain, data: str, i: int) -> None:
        key = families.statement_keyword(stmt)
        self.g.add_node(key, kind="process")
        if data in self.g and f"{data}_t" in self.g:
            self.edge(data, key, i, stmt.span)
            self.edge(key, f"{data}_t", i, stmt.span)

    def visit_SDE(self, stmt: ast.SDE, i: int) -> None:
        self.process(stmt, stmt.differential[1:], i)

    def visit_Chain(self, stmt: ast.Chain, i: int) -> None:
        self.process(stmt, stmt.var, i)

    def visit_Path(self, stmt: ast.Path, i: int) -> None:
        self.g.add_node("path", kind="process")
        for p in self.refs(stmt.value):
            if p != stmt.target:
                self.edge(p, "path", i, stmt.span)
        if stmt.target in self.g:
            self.edge("path", stmt.target, i, stmt.span)

    def visit_Predict(self, stmt: ast.Predict, i: int) -> None:
        self.g.add_node("predict", kind="predict")
        self.g.add_node("t", kind="time")
        for p in self.refs(stmt.value):
            self.edge(p, "predict", i, stmt.span)
        self.edge("predict", "loss", i, stmt.span)

    def scorer(self, stmt: ast.Critic | ast.Energy, i: int) -> None:
        sources = [stmt.name] if stmt.value is None else self.refs(stmt.value)
        for p in sources:
            if p in self.g:
                self.edge(p, "loss", i, stmt.span)

    def visit_Critic(self, stmt: ast.Critic, i: int) -> None:
        self.scorer(stmt, i)

    def visit_Energy(self, stmt: ast.Energy, i: int) -> None:
        self.scorer(stmt, i)
