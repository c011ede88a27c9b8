"""Build a :class:`CheckedModel` of the latent family by hand from spec text, independently of
the checker, so the back end is tested against the contract in ``gendsl/ir/model.py`` (the
checker's record built here becomes the IR by :func:`gendsl.analysis.to_ir.to_ir`)."""

from __future__ import annotations

import networkx as nx

from gendsl import ir
from gendsl.analysis.model import CheckedModel, Site, to_value
from gendsl.analysis.to_ir import to_ir
from gendsl.distributions import DISTRIBUTIONS
from gendsl.frontend import ast
from gendsl.frontend.parser import parse
from gendsl.ir import NetSpec, Variable, VarType
from gendsl.source import Source

__all__ = ["checked_latent"]


def _type(t: ast.TypeExpr) -> VarType:
    kw = {k.name: to_value(k.value) for k in t.kwargs}
    if t.kind == "label":
        return VarType("label", (), to_value(t.args[0]))
    if t.kind == "code":
        return VarType("code", (kw["dim"],), kw["K"])
    return VarType(t.kind, tuple(to_value(a) for a in t.args))


def _site(s: ast.Sample) -> Site:
    info = DISTRIBUTIONS[s.dist.func]
    given = tuple(g.id for g in s.given)
    if len(s.dist.args) == 1 and not s.dist.kwargs and len(info.params) > 1:
        return Site(s.target, given, s.dist.func, {}, s.dist.args[0], s.span)
    params = dict(zip(info.params or info.alternatives[:1], s.dist.args, strict=False))
    params.update({k.name: k.value for k in s.dist.kwargs})
    return Site(s.target, given, s.dist.func, params, None, s.span)


def checked_latent(text: str) -> ir.CheckedModel:
    """The checked model of a one-model latent-family spec (shapes inferred from net uses)."""
    prog = parse(text, "<test>")
    (m,) = prog.models
    body = list(m.body)
    guide = [s for st in body if isinstance(st, ast.Guide) for s in st.body]
    variables = {
        d.name: Variable(d.name, d.role, _type(d.type), d.span)
        for d in body
        if isinstance(d, ast.Decl)
    }
    decls = {n.name: n for n in body if isinstance(n, ast.Net)}
    nets: dict[str, NetSpec] = {}

    def use(call: ast.Call, out: tuple) -> None:
        if call.func not in decls or call.func in nets:
            return
        ins, classes = [], None
        for a in call.args:
            var = variables.get(a.id) if isinstance(a, ast.Name) else None
            if var is not None and var.type.kind == "label":
                classes = var.type.classes
            elif var is not None:
                ins.append(var.type.shape)
            else:
                ins.append(nets[a.func].out_shape)
        options = {k.name: to_value(k.value) for k in decls[call.func].constructor.kwargs}
        nets[call.func] = NetSpec(
            call.func,
            decls[call.func].constructor.func,
            options,
            tuple(a.id if isinstance(a, ast.Name) else a.func for a in call.args),
            tuple(ins),
            out,
            False,
            classes,
            call.span,
        )

    sites = [_site(s) for s in body if isinstance(s, ast.Sample)]
    guide_sites = [_site(s) for s in guide if isinstance(s, ast.Sample)]
    assigns = tuple(a for a in body if isinstance(a, ast.Assign))
    for a in assigns:
        call = a.value
        if call.func == "quantize":
            code = variables[a.target].type
            inner = call.args[0]
            use(inner, code.shape)
    for site in sites + guide_sites:
        t = variables[site.name].type
        target = (t.classes,) if t.kind == "label" else t.shape
        if site.packed is not None:
            use(site.packed, (DISTRIBUTIONS[site.dist].n_params(), *target))
        for e in site.params.values():
            for node in ast.walk(e):
                if isinstance(node, ast.Call):
                    use(node, target)
    loss = next(s for s in body if isinstance(s, ast.Loss))
    record = CheckedModel(
        name=m.name,
        family="latent",
        source=Source("<test>", text),
        ast=m,
        variables=variables,
        lets={x.name: x for x in body if isinstance(x, ast.Let)},
        nets=nets,
        sites=tuple(sites),
        guide=tuple(guide_sites),
        assigns=assigns,
        flows={},
        process=None,
        path=None,
        couple=None,
        predict=None,
        critic=None,
        energy=None,
        guidance=None,
        loss=to_value(loss.option),
        sampler=None,
        train={},
        sizes={},
        graph=nx.DiGraph(),
    )
    return to_ir(record)
