"""The family table (gendsl/families) agrees with the checker's results, the library and the
graphs it draws, for every stdlib and example spec; importing it loads neither torch nor sympy.
(That the checker reads the table is tests/families/test_checker_reads_the_table.py.)"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from gendsl.analysis import library as lib
from gendsl.analysis.check import check_file, check_text
from gendsl.errors import SpecErrors
from gendsl.families import (
    DEFAULT,
    FAMILIES,
    KEYWORDS,
    TABLE,
    family_of_keyword,
    node_styles,
    recognise,
    resolve,
)
from gendsl.frontend import ast
from gendsl.frontend.parser import parse

ROOT = Path(__file__).resolve().parents[2]
SPECS = sorted(ROOT.glob("stdlib/*.gen")) + sorted(ROOT.glob("examples/*.gen"))
MODELS = [(spec, m) for spec in SPECS for m in check_file(spec)]
IDS = [f"{spec.parent.name}/{spec.stem}:{m.name}" for spec, m in MODELS]
#: Graph node kinds every model may have (drawn by gendsl.analysis.draw itself).
COMMON_NODES = {"observed", "latent", "condition", "derived", "net", "loss", "predict", "time"}


def _keywords(model) -> list[str]:
    """The leading keyword of each top-level statement, as the spec writes it."""
    return [s.split()[0] for s in model.statements]


def test_the_table_covers_every_family_the_checker_produces():
    assert len(SPECS) >= 50
    produced = {m.family for _, m in MODELS}
    assert produced == set(FAMILIES) == set(lib.FAMILY_INFO)
    assert tuple(TABLE) == FAMILIES
    assert all(TABLE[name].name == name for name in FAMILIES)


@pytest.mark.parametrize(("spec", "model"), MODELS, ids=IDS)
def test_recognition_agrees_with_the_checker(spec, model):
    assert recognise(_keywords(model)) == model.family


def test_recognition_is_decided_by_one_keyword_per_statement():
    assert DEFAULT == "latent" and recognise([]) == "latent"
    assert recognise(["data", "latent", "net", "loss"]) == "latent"
    assert recognise(["sde", "predict"]) == recognise(["chain"]) == "diffusion"
    assert recognise(["path", "couple"]) == "matching"
    assert recognise(["sde", "path"]) is None
    assert family_of_keyword("critic") == "adversarial" and family_of_keyword("guide") is None
    assert sorted(KEYWORDS) == ["chain", "critic", "energy", "flow", "path", "sde"]


def _syntax(spec: Path, name: str) -> ast.Model:
    """The model ``name`` of ``spec`` as written (its syntax tree, before merging)."""
    return next(m for m in parse(spec.read_text(), str(spec)).models if m.name == name)


def _own_model(name: str, stmt: type):
    """A stdlib/example model of family ``name`` that writes its ``stmt`` in its own file."""
    return next(
        (s, m, st)
        for s, m in MODELS
        for st in _syntax(s, m.name).body
        if m.family == name and m.base is None and m.guidance is None and isinstance(st, stmt)
    )


def _without_line(spec: Path, line: int, instead: str | None = None) -> str:
    lines = spec.read_text().splitlines()
    return "\n".join(lines[: line - 1] + ([instead] if instead else []) + lines[line:])


@pytest.mark.parametrize("name", FAMILIES)
def test_a_foreign_loss_is_refused_in_the_words_of_the_plugin(name):
    spec, _, loss = _own_model(name, ast.Loss)
    foreign = "gan" if name == "flow" else "nll"
    with pytest.raises(SpecErrors) as info:
        check_text(_without_line(spec, loss.span.line, f"loss {foreign}"), spec.as_posix())
    expected = ", ".join(lib.FAMILY_INFO[name].losses)
    assert [e.message for e in info.value.errors] == [
        f"loss {foreign} does not fit {TABLE[name].words}; expected one of {expected}"
    ]


_MISSING_PREDICT = {
    "diffusion": "a diffusion model needs a predict statement, e.g. 'predict eps = eps(x_t, t)'",
    "matching": "a flow-matching model needs a predict statement, e.g. "
    "'predict velocity = v(x_t, t)'",
}


@pytest.mark.parametrize("name", FAMILIES)
def test_a_missing_predict_gets_the_plugins_example(name):
    assert (TABLE[name].predict_example is not None) == (name in _MISSING_PREDICT)
    if name not in _MISSING_PREDICT:
        return
    spec, _, predict = _own_model(name, ast.Predict)
    with pytest.raises(SpecErrors) as info:
        check_text(_without_line(spec, predict.span.line), spec.as_posix())
    assert [e.message for e in info.value.errors] == [_MISSING_PREDICT[name]]


@pytest.mark.parametrize(("spec", "model"), MODELS, ids=IDS)
def test_a_model_without_a_sampler_gets_the_plugins_default(spec, model):
    if any(s.startswith("sample ") for s in model.statements):
        assert model.sampler.name in TABLE[model.family].samplers
    else:
        assert model.sampler.name == TABLE[model.family].default_sampler


@pytest.mark.parametrize(("spec", "model"), MODELS, ids=IDS)
def test_a_family_declares_the_graph_nodes_its_statements_add(spec, model):
    kinds = {str(model.graph.nodes[n].get("kind")) for n in model.graph.nodes}
    assert kinds - COMMON_NODES <= set(TABLE[model.family].nodes)


def test_node_styles_of_different_families_agree():
    styles = node_styles()
    assert set(styles) == {"process", "noised", "noise", "flow"}
    assert TABLE["diffusion"].nodes["process"] == TABLE["matching"].nodes["process"]
    assert not set(styles) & (COMMON_NODES - {"predict", "time"})


@pytest.mark.parametrize("name", FAMILIES)
def test_every_hook_is_callable_or_a_reference(name):
    plugin = TABLE[name]
    assert callable(plugin.derive)
    assert plugin.symbolic_check is None or callable(plugin.symbolic_check)
    for ref in (plugin.lower, plugin.model_class):
        module, sep, attr = ref.partition(":")
        assert sep and module.startswith("gendsl.lower.") and attr.isidentifier()
    assert plugin.check == f"gendsl.analysis.family_rules:check_{name}"
    assert callable(resolve(plugin.check))


def test_resolve_names_an_object_and_refuses_a_bare_module():
    assert resolve("gendsl.families.table:recognise") is recognise
    with pytest.raises(ValueError) as info:
        resolve("gendsl.families")
    assert str(info.value) == "expected 'module:attribute', got 'gendsl.families'"


def test_symbolic_checks_belong_to_the_families_with_a_process_or_path():
    with_check = {name for name in FAMILIES if TABLE[name].symbolic_check is not None}
    assert with_check == {"diffusion", "matching"}
    for _, model in MODELS:
        has_statement = model.process is not None or model.path is not None
        assert has_statement == (model.family in with_check)


def test_importing_the_table_and_the_drawing_loads_no_torch_nor_sympy():
    code = (
        "import sys, gendsl.families, gendsl.analysis.draw, gendsl.symbolic.checks\n"
        "heavy = ('torch', 'pyro', 'torchsde', 'torchdiffeq', 'ot', 'sympy')\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"
