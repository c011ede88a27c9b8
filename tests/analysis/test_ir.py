"""The checker's output is the IR: resolved names and calls, sugar as nodes, no syntax tree."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import pytest

from gendsl import ir
from gendsl.analysis import check_file, load_checked
from gendsl.resources import stdlib_dir

STDLIB = sorted(stdlib_dir().glob("*.gen"))


def _statements(m: ir.CheckedModel) -> list[ir.Stmt]:
    one = (m.process, m.path, m.couple, m.predict, m.critic, m.energy, m.guidance)
    return [*m.lets.values(), *m.assigns, *m.flows.values(), *(s for s in one if s is not None)]


def _nodes(m: ir.CheckedModel) -> list[object]:
    roots: list[ir.Node] = list(_statements(m))
    for site in (*m.sites, *m.guide):
        roots += [*site.params.values(), *([site.packed] if site.packed else [])]
    return [n for root in roots for n in ir.walk(root)]


@pytest.mark.parametrize("path", STDLIB, ids=[p.stem for p in STDLIB])
def test_every_stdlib_model_is_ir_only_and_prints_as_written(path: Path):
    for m in check_file(path):
        assert isinstance(m, ir.CheckedModel)
        assert not any(f.name == "ast" for f in fields(m))
        for node in _nodes(m):
            assert type(node).__module__ == "gendsl.ir.nodes", type(node)
        written = set(m.statements)
        for s in _statements(m):
            assert ir.format_statement(s) in written


VAE = """
model vae {
  data x : real[D]
  condition y : label[3]
  latent z : real[4]
  net enc = MLP(hidden = [8])
  net dec = MLP(hidden = [8])
  let s = 0.5
  let f(u) = 2 * u
  z ~ Normal(0, 1)
  x | z, y ~ Normal(dec(z, y), f(s))
  guide { z | x ~ Normal(enc(x)) }
  loss elbo(beta = 2)
}
"""


def test_names_carry_their_role_and_type_and_calls_what_they_call():
    m = load_checked(VAE)
    x = next(s for s in m.sites if s.name == "x")
    loc, scale = x.params["loc"], x.params["scale"]
    assert isinstance(loc, ir.Call) and (loc.kind, loc.shape) == ("network", ("D",))
    z, y = loc.args
    assert (z.role, z.type) == ("latent", ir.VarType("real", (4,)))
    assert (y.role, y.type) == ("condition", ir.VarType("label", (), 3))
    assert isinstance(scale, ir.Call) and scale.kind == "let"
    assert scale.args[0].role == "let" and scale.args[0].type is None
    assert m.lets["f"].value.right.role == "param"
    (guide,) = m.guide
    assert guide.packed is not None and guide.packed.shape == (2, 4)


def test_an_sde_resolves_its_time_and_differentials():
    m = load_checked(Path("stdlib/vp_sde.gen"))
    roles = {n.id: n.role for n in ir.walk(m.process) if isinstance(n, ir.Name)}
    assert roles["dt"] == roles["dw"] == "differential"
    assert roles["t"] == "time" and roles["x"] == "data"


def test_consistency_and_quantize_are_nodes_with_their_values():
    m = load_checked(Path("stdlib/consistency_training.gen"))
    c = m.predict.value
    assert isinstance(c, ir.Consistency)
    assert (c.net.id, c.net.role, c.sigma_data) == ("f", "network", 0.5)
    v = load_checked(Path("stdlib/vqvae.gen"))
    (assign,) = v.assigns
    assert isinstance(assign.value, ir.Quantize)
    assert assign.value.operand.kind == "network"


def test_the_coupling_is_checked_once_with_its_defaults():
    m = load_checked(Path("stdlib/ot_cfm.gen"))
    assert m.couple.checked.name == "ot"
    assert m.couple.checked.kwargs["method"] == "exact"


VE = """
model m {
  data x : real[2]
  let sigma(t) = 0.01 * 50^t
  sde dx = sqrt(d(sigma(t)^2)/dt) * dw, t in [0, 1]
  net eps = MLP(hidden = [8], time = fourier)
  predict eps = eps(x_t, t)
  loss dsm
}
"""


def test_a_time_derivative_is_a_node():
    m = load_checked(VE)
    (node,) = (n for n in ir.walk(m.process) if isinstance(n, ir.Derivative))
    assert (node.time, ir.format_expr(node.operand)) == ("t", "sigma(t)^2")
    assert node.operand.left.kind == "let" and node.operand.left.args[0].role == "time"


def test_guidance_carries_its_value():
    m = load_checked(Path("stdlib/cfg.gen"))
    assert m.guidance.value == ir.to_value(m.guidance.option)
    assert m.guidance.value.name == "classifier_free"
