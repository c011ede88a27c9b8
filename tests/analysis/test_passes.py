"""The checker's passes: the visitor, the family rules, what each pass leaves in the context,
and the order in which the passes report."""

from __future__ import annotations

from pathlib import Path

from gendsl.analysis import family_rules, scope, shapes, types
from gendsl.analysis import library as lib
from gendsl.analysis.check import check_model
from gendsl.analysis.context import Context, StatementVisitor
from gendsl.analysis.graph import build_graph
from gendsl.analysis.resolve import load, merged_model
from gendsl.families import TABLE, resolve
from gendsl.frontend import ast

ROOT = Path(__file__).resolve().parents[2]


def _context(text: str) -> Context:
    sc = load(text, "m.gen", Path("."))
    (model,) = sc.program.models
    return Context(sc, merged_model(sc, model))


VAE = """model m {
  data x : real[4]
  latent z : real[2]
  net enc = MLP(hidden = [8])
  net dec = MLP(hidden = [8])
  z ~ Normal(0, 1)
  x | z ~ Normal(dec(z), 0.1)
  h = dec(z) * 2
  guide { z | x ~ Normal(enc(x)) }
  loss elbo
}"""


class _Seen(StatementVisitor):
    def __init__(self) -> None:
        self.seen: list[str] = []

    def visit_Sample(self, stmt: ast.Sample) -> None:
        self.seen.append(f"sample {stmt.target}")

    def other_Sample(self, stmt: ast.Sample, extra: int) -> None:
        self.seen.append(f"other {stmt.target} {extra}")


def test_the_visitor_dispatches_by_class_name_and_prefix_and_skips_the_rest():
    body = _context(VAE).model.body
    v = _Seen()
    v.visit_all(body)
    assert v.seen == ["sample z", "sample x"]  # declarations, nets, guide, loss are skipped
    v.seen.clear()
    v.visit(body[4], 7, prefix="other")
    assert v.seen == ["other z 7"]
    assert v.visit(body[0]) is None


def test_each_plugin_names_its_rules_in_family_rules_and_every_family_is_recognised():
    assert set(TABLE) == set(lib.FAMILY_INFO)
    for name, plugin in TABLE.items():
        assert plugin.check is not None
        assert resolve(plugin.check) is getattr(family_rules, f"check_{name}")
    for path, family in [
        ("stdlib/vae.gen", "latent"),
        ("stdlib/vp_sde.gen", "diffusion"),
        ("stdlib/realnvp.gen", "flow"),
    ]:
        cx = _context((ROOT / path).read_text())
        assert family_rules.recognise(cx) == family


def test_each_pass_fills_its_part_of_the_context():
    cx = _context(VAE)
    scope.run(cx)
    assert set(cx.variables) == {"x", "z", "h"} and cx.variables["h"].role == "derived"
    assert set(cx.net_decls) == {"enc", "dec"} and not cx.sites
    types.run(cx)
    assert [s.name for s in cx.sites] == ["z", "x"] and [s.name for s in cx.guide_sites] == ["z"]
    assert set(cx.sampled) == {"z", "x", "h"} and cx.net_uses["dec"][0] == 1
    cx.family = family_rules.recognise(cx)
    family_rules.run(cx)
    assert (cx.family, cx.loss.name, cx.sampler.name) == ("latent", "elbo", "ancestral")
    assert not cx.nets
    shapes.run(cx)
    assert cx.nets["enc"].out_shape == (2, 2) and cx.nets["dec"].out_shape == (4,)
    assert cx.shapes["h"] == (4,)
    g = build_graph(cx)
    assert g.has_edge("z", "x") and g.edges["x", "z"]["guide"] and g.has_edge("dec", "h")
    assert cx.errors == []


def guide(name: str) -> str:
    return f"'guide {{ {name} | x ~ Normal(enc(x)) }}'"


def test_passes_report_in_order_scope_types_family_shapes_graph():
    text = """model m {
      data x : real[4]
      latent z : real[2]
      latent u : real[2]
      net dec = MLP(hidden = [8])
      net f = MLP(hidden = [8])
      x | z ~ Normal(dec(z), 0.1)
      z | x ~ Normal(0, 1)
      u ~ Normal(f(u2), 1)
      predict eps = dec(x)
      x = 3
      loss elbo(beta = 2)
      net z = MLP()
    }"""
    cx = _context(text)
    checked, errors = check_model(cx.scope, cx.model)
    assert checked is None
    found = [(e.span.line, e.message) for e in errors]
    assert found == [
        (13, "'z' is already defined as a variable on line 3"),  # scope
        (9, "undefined name 'u2'; did you mean 'u'?"),  # types
        (11, "'x' is generated twice: it is already sampled or assigned on line 7"),
        (10, "predict has no meaning in a latent-variable model"),  # family rules
        (12, f"loss elbo needs a guide for latent 'z': add {guide('z')} or enumerate = [z]"),
        (12, f"loss elbo needs a guide for latent 'u': add {guide('u')} or enumerate = [u]"),
        (9, "cannot infer the shape of 'u2': declare it with a type, e.g. 'latent h : real[8]'"),
        (
            10,
            "network 'dec' is used with input shapes [(4,)] and output shape (4,) here, "
            "but with [(2,)] and (4,) on line 7",
        ),  # shapes
        (
            9,
            "latent 'u' is sampled but never used: nothing in the model depends on it; give it "
            "to what it generates (e.g. 'x | u ~ ...' or a network call such as 'dec(u)') or "
            "remove it",
        ),  # graph
        (8, "cycle in the model: z -> x -> z"),
    ]


def test_no_module_is_over_700_lines():
    sizes = {p: len(p.read_text().splitlines()) for p in (ROOT / "gendsl").rglob("*.py")}
    assert sizes and {str(p.relative_to(ROOT)): n for p, n in sizes.items() if n > 700} == {}
