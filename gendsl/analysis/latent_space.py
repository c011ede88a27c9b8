"""The latent-space pass: a model declared over the latent space of a trained autoencoder.

Latent diffusion (Rombach et al. 2022, "High-Resolution Image Synthesis with Latent Diffusion
Models", CVPR) trains a diffusion or flow-matching model on the codes z = E(x) of a frozen,
already trained autoencoder and samples x = D(z).  A spec declares it by composing runs::

    use ae = run("runs/vqvae_fontdigits")   # a trained autoencoder run, frozen
    data x : image[1, 28, 28]                # the data the autoencoder encodes
    latent z : real[8, 7, 7]                 # its latent (checked against the run's encoder)
    z = ae.encode(x)
    x = ae.decode(z)
    sde dz = ..., t in [0, 1]                # any diffusion or flow-matching process of z

This pass runs before the others.  It checks the ``use`` statement and the two assignments and
rewrites the model so that the passes after it see a model whose data variable is ``z`` (the
``x`` declaration and the two assignments removed, ``latent z`` declared ``data``): everything
the checker, the symbolic core and the back ends know of diffusion and flow matching applies
to ``z`` unchanged.  What was removed is kept in a :class:`Pending` record that becomes the
IR's :class:`gendsl.ir.LatentSpace` once the scope pass has typed ``x``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import networkx as nx

from gendsl.analysis.context import Context, where
from gendsl.frontend import ast
from gendsl.ir import LatentSpace, Variable

__all__ = ["Pending", "add_to_graph", "check_family", "finish", "run"]

#: The methods of a used run, with the example each error message shows.
METHODS = {"encode": "z = {use}.encode(x)", "decode": "x = {use}.decode(z)"}
#: The families whose process can run on an autoencoder's latent.
FAMILIES = ("diffusion", "matching")


@dataclass(frozen=True)
class Pending:
    """What the rewrite removed: the use statement, the data declaration and the latent."""

    use: ast.Use
    run: str
    data: ast.Decl
    latent: str


def _method_calls(node: ast.Node) -> list[ast.Call]:
    """Every ``name.method(...)`` call below ``node``."""
    return [n for n in ast.walk(node) if isinstance(n, ast.Call) and "." in n.func]


def _run_path(cx: Context, use: ast.Use) -> str | None:
    """The folder of ``use ae = run("...")`` (``None``: reported)."""
    src = use.source
    if src.func == "run" and len(src.args) == 1 and not src.kwargs:
        arg = src.args[0]
        if isinstance(arg, ast.Str) and arg.value:
            return arg.value
    cx.error(
        f"use takes a trained run: write 'use {use.name} = run(\"runs/NAME\")', the folder "
        "that gendsl train wrote",
        src.span,
    )
    return None


def _method(cx: Context, use: ast.Use | None, call: ast.Call) -> str | None:
    """The method ``call`` calls on the used run (``None``: reported)."""
    obj, method = call.func.split(".", 1)
    if use is None or obj != use.name:
        declared = f"; the model uses '{use.name}'" if use is not None else ""
        cx.error(
            f"'{obj}' is not a used run: declare it with 'use {obj} = run(\"runs/NAME\")'"
            f"{declared}",
            call.func_span,
        )
        return None
    if method not in METHODS:
        cx.error(
            f"a used run has the methods encode and decode, not '{method}': write "
            f"{METHODS['encode'].format(use=obj)} and {METHODS['decode'].format(use=obj)}",
            call.func_span,
        )
        return None
    if len(call.args) != 1 or not isinstance(call.args[0], ast.Name) or call.kwargs:
        cx.error(
            f"{call.func} takes one variable, e.g. {METHODS[method].format(use=obj)}", call.span
        )
        return None
    return method


def _assignments(cx: Context, use: ast.Use | None) -> tuple[dict[str, ast.Assign], set[int]]:
    """The well-formed ``z = ae.encode(x)``/``x = ae.decode(z)`` by method, and the ids of
    the statements that call a method wrongly (reported, removed from the model)."""
    found: dict[str, ast.Assign] = {}
    dropped: set[int] = set()
    for stmt in cx.model.body:
        calls = _method_calls(stmt)
        if not calls:
            continue
        whole = isinstance(stmt, ast.Assign) and stmt.value is calls[0] and len(calls) == 1
        if not whole:
            call = calls[0]
            obj, method = call.func.split(".", 1)
            example = METHODS.get(method, METHODS["encode"]).format(use=obj)
            cx.error(
                f"{call.func}(...) is a statement of its own, the whole right-hand side of an "
                f"assignment: e.g. {example}",
                call.span,
            )
            dropped.add(id(stmt))
            continue
        method = _method(cx, use, calls[0])
        if method is None:
            dropped.add(id(stmt))
        elif method in found:
            first = found[method]
            cx.error(
                f"{method} is called once; the first call is {where(first.span, stmt.span)}",
                stmt.span,
            )
            dropped.add(id(stmt))
        else:
            found[method] = stmt
    return found, dropped


def _arg(stmt: ast.Assign) -> ast.Name:
    call = stmt.value
    assert isinstance(call, ast.Call) and isinstance(call.args[0], ast.Name)
    return call.args[0]


def _pair(
    cx: Context, use: ast.Use, found: dict[str, ast.Assign]
) -> tuple[ast.Decl, ast.Decl] | None:
    """The declarations of x and z of a well-formed encode/decode pair (``None``: reported)."""
    missing = [m for m in METHODS if m not in found]
    if missing:
        says = {"encode": "how the data becomes latent", "decode": "how latents become data"}
        cx.error(
            f"model {cx.model.name} uses the latent space of '{use.name}': declare "
            + " and ".join(f"{says[m]} ({METHODS[m].format(use=use.name)})" for m in missing),
            use.span,
        )
        return None
    decls = {s.name: s for s in cx.model.body if isinstance(s, ast.Decl)}
    encode, decode = found["encode"], found["decode"]
    x, z = _arg(encode), encode.target
    data, latent = decls.get(x.id), decls.get(z)
    ok = True
    if data is None or data.role != "data":
        cx.error(f"{use.name}.encode takes the data: declare 'data {x.id} : ...'", x.span)
        ok = False
    if latent is None or latent.role != "latent" or latent.type.kind != "real":
        cx.error(
            f"{use.name}.encode gives a latent: declare 'latent {z} : real[...]' with the "
            "shape of the autoencoder's latent",
            encode.target_span,
        )
        ok = False
    if ok and (decode.target != x.id or _arg(decode).id != z):
        cx.error(
            f"decode maps the latent back to the data: write '{x.id} = {use.name}.decode({z})'",
            decode.span,
        )
        ok = False
    return (data, latent) if ok else None


def _uses_data(cx: Context, body: list[ast.Stmt], x: str) -> list[ast.Stmt]:
    """``body`` without the statements that name the encoded data ``x`` (each reported)."""
    kept = []
    for stmt in body:
        name = next((n for n in ast.walk(stmt) if isinstance(n, ast.Name) and n.id == x), None)
        if name is None:
            kept.append(stmt)
            continue
        cx.error(
            f"'{x}' is the data the autoencoder encodes; the rest of the model is a model of "
            "its latent: name the latent instead",
            name.span,
        )
    return kept


def run(cx: Context) -> tuple[Pending | None, bool]:
    """Check the model's ``use`` statement and its encode/decode pair and rewrite ``cx.model``
    into the model of the latent (see the module docstring).  Returns the removed parts
    (``None`` for a model without ``use``) and whether checking goes on: not after an error
    in a model that uses a run, whose other statements would only repeat it."""
    uses = [s for s in cx.model.body if isinstance(s, ast.Use)]
    use = uses[0] if uses else None
    path = _run_path(cx, use) if use is not None else None
    for extra in uses[1:]:
        cx.error(
            f"a model uses one trained run; the first is {where(uses[0].span, extra.span)}",
            extra.span,
        )
    found, dropped = _assignments(cx, use)
    body = [s for s in cx.model.body if id(s) not in dropped and not isinstance(s, ast.Use)]
    pending = None
    if use is not None and len(uses) == 1 and not dropped:
        pair = _pair(cx, use, found)
        if path is not None and pair is not None:
            data, latent = pair
            removed = {id(found["encode"]), id(found["decode"]), id(data)}
            body = _uses_data(cx, [s for s in body if id(s) not in removed], data.name)
            as_data = dataclasses.replace(latent, role="data")
            body = [as_data if s is latent else s for s in body]
            pending = Pending(use, path, data, latent.name)
    if uses or dropped:
        cx.model = dataclasses.replace(cx.model, body=tuple(body))
    return pending, not cx.errors


def finish(cx: Context, pending: Pending | None, vartype) -> LatentSpace | None:
    """The IR record of ``pending`` with the data's type (``vartype`` types a declaration,
    after the scope pass has bound the sizes)."""
    if pending is None:
        return None
    d = pending.data
    data = Variable(d.name, "data", vartype(d.type), d.name_span)
    return LatentSpace(pending.use.name, pending.run, data, pending.latent, pending.use.span)


def check_family(cx: Context, pending: Pending | None) -> None:
    """Only a diffusion or flow-matching process runs on an autoencoder's latent."""
    if pending is None or cx.family is None or cx.family in FAMILIES:
        return
    cx.error(
        f"a model over the latent space of '{pending.use.name}' is a diffusion or flow-matching "
        f"model of '{pending.latent}' (an sde, chain or path); this one is a {cx.family} model",
        pending.use.span,
    )


def add_to_graph(graph: nx.DiGraph, space: LatentSpace) -> None:
    """Draw the autoencoder into the model graph: the data ``x`` observed, ``ae.encode`` from it
    to the latent (an inference edge, dashed) and ``ae.decode`` from the latent back to it; the
    latent, which the rest of the checker saw as data, drawn as a latent."""
    x, z = space.data.name, space.latent
    encode, decode = f"{space.use}.encode", f"{space.use}.decode"
    graph.add_node(x, kind="observed")
    graph.nodes[z]["kind"] = "latent"
    graph.add_node(encode, kind="net", label=f"{encode} (frozen)")
    graph.add_node(decode, kind="net", label=f"{decode} (frozen)")
    graph.add_edge(x, encode, guide=True)
    graph.add_edge(encode, z, guide=True)
    graph.add_edge(z, decode)
    graph.add_edge(decode, x)
