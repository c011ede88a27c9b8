"""Draw the model graph: Graphviz DOT text, or SVG/PNG through matplotlib (no Graphviz needed).

Plate-style conventions of graphical models: observed variables are shaded circles, latent
variables open circles, deterministic nodes dashed, networks boxes, processes and losses
rounded labels; the data variables sit in a plate over the batch (drawn as a frame in DOT).
"""

from __future__ import annotations

from pathlib import Path

import networkx as nx

from gendsl.errors import UsageError
from gendsl.families import NodeStyle, node_styles
from gendsl.ir import CheckedModel

__all__ = ["to_dot", "write_graph"]

#: node kind -> style, for the kinds every model may have; the kinds a family's statements add
#: (``process``, ``noised``, ``flow``, ...) are drawn as its plugin says (:mod:`gendsl.families`).
_STYLE = {
    "observed": NodeStyle('shape=circle style=filled fillcolor="#c8c8c8"', "o", "#c8c8c8"),
    "latent": NodeStyle("shape=circle", "o", "white"),
    "condition": NodeStyle('shape=circle style=filled fillcolor="#e8e0c8"', "o", "#e8e0c8"),
    "derived": NodeStyle("shape=circle style=dashed", "o", "white", "dashed"),
    "net": NodeStyle('shape=box style=filled fillcolor="#f4f4f4"', "s", "#f4f4f4"),
    "loss": NodeStyle("shape=note", "h", "#fff4d8"),
    **node_styles(),
}
_DEFAULT = NodeStyle("shape=ellipse", "o", "white")


def _kind(graph: nx.DiGraph, node: str) -> str:
    return str(graph.nodes[node].get("kind", "latent"))


def _quote(text: str) -> str:
    return '"' + str(text).replace("\\", "\\\\").replace('"', '\\"') + '"'


def to_dot(model: CheckedModel) -> str:
    """The model graph in Graphviz DOT, with the observed variables inside a plate."""
    g = model.graph
    lines = [f"digraph {_quote(model.name)} {{", "  rankdir=TB;", "  node [fontname=Helvetica];"]
    observed = [n for n in g.nodes if _kind(g, n) == "observed"]
    for node in g.nodes:
        if node in observed:
            continue
        attrs = _STYLE.get(_kind(g, node), _DEFAULT).dot
        lines.append(
            f"  {_quote(node)} [{attrs} label={_quote(g.nodes[node].get('label', node))}];"
        )
    if observed:
        lines.append('  subgraph cluster_data { label="N"; style=rounded;')
        for node in observed:
            attrs = _STYLE["observed"].dot
            lines.append(f"    {_quote(node)} [{attrs}];")
        lines.append("  }")
    for u, v, data in g.edges(data=True):
        style = " [style=dashed color=gray40]" if data.get("guide") else ""
        lines.append(f"  {_quote(u)} -> {_quote(v)}{style};")
    lines.append("}")
    return "\n".join(lines) + "\n"


def _layers(g: nx.DiGraph) -> dict[str, float]:
    """Longest-path depth of each variable over the generative edges, for a top-down layout;
    a network or flow sits half a layer above the first node it feeds."""
    side = {n for n in g.nodes if _kind(g, n) in ("net", "flow")}
    gen = nx.DiGraph(
        (u, v) for u, v, d in g.edges(data=True) if not d.get("guide") and u not in side
    )
    gen.add_nodes_from(n for n in g.nodes if n not in side)
    depth: dict[str, float] = {}
    for node in nx.topological_sort(gen):
        preds = [depth[p] for p in gen.predecessors(node)]
        depth[node] = max(preds) + 1 if preds else 0
    for node in side:
        targets = [depth[v] for v in g.successors(node) if v in depth]
        depth[node] = (min(targets) if targets else 1) - 0.5
    return depth


def _draw(model: CheckedModel, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    g = model.graph
    layer = _layers(g)
    rows: dict[float, list[str]] = {}  # each layer's nodes in graph order: a reproducible picture
    for node in g.nodes:
        rows.setdefault(layer[node], []).append(node)
    pos = nx.multipartite_layout(g, subset_key=rows, align="horizontal", scale=1.0)
    pos = {n: (x, -y) for n, (x, y) in pos.items()}  # parents above children
    widest = max(list(layer.values()).count(d) for d in set(layer.values()))
    width = max(4.0, 1.6 * widest)
    height = 1.4 * (max(layer.values(), default=0) - min(layer.values(), default=0) + 2)
    fig, ax = plt.subplots(figsize=(width, height))
    for kind in dict.fromkeys(_kind(g, n) for n in g.nodes):  # in node order: reproducible
        style = _STYLE.get(kind, _DEFAULT)
        nodes = [n for n in g.nodes if _kind(g, n) == kind]
        nx.draw_networkx_nodes(
            g,
            pos,
            nodelist=nodes,
            node_shape=style.marker,
            node_color=style.face,
            edgecolors="black",
            linewidths=1.2,
            node_size=1400,
            ax=ax,
        )
        if style.line != "solid":
            ax.collections[-1].set_linestyle(style.line)
    gen_edges = [(u, v) for u, v, d in g.edges(data=True) if not d.get("guide")]
    guide_edges = [(u, v) for u, v, d in g.edges(data=True) if d.get("guide")]
    nx.draw_networkx_edges(g, pos, edgelist=gen_edges, node_size=1400, arrowsize=14, ax=ax)
    nx.draw_networkx_edges(
        g,
        pos,
        edgelist=guide_edges,
        node_size=1400,
        arrowsize=14,
        style="dashed",
        edge_color="gray",
        ax=ax,
    )
    nx.draw_networkx_labels(g, pos, font_size=9, ax=ax)
    ax.set_title(f"{model.name} [{model.family}]")
    ax.axis("off")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def write_graph(model: CheckedModel, path: Path) -> None:
    """Write the model graph to ``path``; the suffix picks the format (.dot, .svg or .png)."""
    suffix = path.suffix.lower()
    if suffix == ".dot":
        path.write_text(to_dot(model))
    elif suffix in (".svg", ".png", ".pdf"):
        _draw(model, path)
    else:
        raise UsageError(f"graph output must end in .dot, .svg, .png or .pdf, got {path.name!r}")
