"""The checker takes every family fact from the family table: change a plugin and its diagnostics
change with it (these tests fail wherever the checker keeps a copy of its own)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from types import MappingProxyType

import pytest

from gendsl.analysis.check import check_text
from gendsl.errors import SpecErrors
from gendsl.families import STATEMENTS, TABLE, table
from gendsl.frontend import ast, parse
from gendsl.frontend.printer import format_statement

ROOT = Path(__file__).resolve().parents[2]
BAD = ROOT / "tests" / "programs" / "bad"


def _messages(text: str) -> list[str]:
    try:
        check_text(text, "m.gen")
    except SpecErrors as err:
        return [e.message for e in err.errors]
    return []


def _bad(name: str) -> str:
    return (BAD / f"{name}.gen").read_text()


@pytest.fixture
def plugin(monkeypatch):
    """``plugin(name, **changes)`` replaces the plugin of family ``name`` in the table."""

    def change(name: str, **changes) -> None:
        new = dict(table.TABLE)
        new[name] = dataclasses.replace(TABLE[name], **changes)
        monkeypatch.setattr(table, "TABLE", MappingProxyType(new))

    return change


def test_the_words_of_diagnostics_are_the_plugins(plugin):
    text = _bad("28_two_families")
    message = (
        "a model has one family: this critic makes it an adversarial model, but the sde on "
        "line 8 makes it a diffusion model"
    )
    assert _messages(text) == [message]
    plugin("adversarial", words="a GAN")
    plugin("diffusion", words="a DDPM")
    assert _messages(text) == [
        message.replace("an adversarial model", "a GAN").replace("a diffusion model", "a DDPM")
    ]


def test_the_predict_example_is_the_plugins(plugin):
    text = _bad("55_missing_predict")
    example = "a diffusion model needs a predict statement, e.g. 'predict eps = eps(x_t, t)'"
    assert _messages(text) == [example]
    plugin("diffusion", predict_example="predict x0 = f(x_t, t)")
    assert _messages(text) == [example.replace("eps = eps", "x0 = f")]


_CONDITIONAL_ENERGY = """model m {
  data x : real[2]
  condition y : label[3]
  net E = MLP(hidden = [16])
  energy E(x, y)
  loss dsm
}"""


def test_conditions_are_refused_where_the_plugin_says_so(plugin):
    text = _CONDITIONAL_ENERGY
    refused = "conditional energy-based models are not supported yet; remove 'condition y'"
    assert _messages(text) == []
    plugin("energy", conditional=False)
    assert _messages(text) == [refused]
    plugin("energy", conditional=False, words="an EBM")
    assert _messages(text) == [refused.replace("energy-based model", "EBM")]


_CONDITIONAL_GAN = """model m {
  data x : real[2]
  condition c : real[3]
  latent z : real[4]
  net G = MLP(hidden = [8])
  net D = MLP(hidden = [8])
  z ~ Normal(0, 1)
  x = G(z, c)
  critic D
  loss gan
}"""


def test_a_conditional_adversarial_model_is_refused_in_the_plugins_words(plugin):
    unseen = (
        "the critic of a conditional model must see the condition c; write critic D(x, c) "
        "(a projection discriminator: net D = MLP(..., projection = true))"
    )
    assert _messages(_CONDITIONAL_GAN) == [unseen]
    plugin("adversarial", conditional=False)
    refused = "conditional adversarial models are not supported yet; remove 'condition c'"
    assert _messages(_CONDITIONAL_GAN) == [refused, unseen]


def test_one_data_variable_is_the_plugins_flag(plugin):
    text = _bad("70_two_data_variables")
    assert len(_messages(text)) == 1
    plugin("diffusion", one_data_variable=False)
    assert _messages(text) == []
    vae = """model m {
  data x : real[2]
  data y : real[2]
  latent z : real[2]
  net dec = MLP(hidden = [8])
  z ~ Normal(0, 1)
  x | z ~ Normal(dec(z), 0.1)
  y | z ~ Normal(dec(z), 0.1)
  loss elbo(enumerate = [z])
}"""
    assert _messages(vae) == []
    plugin("latent", one_data_variable=True)
    assert _messages(vae) == [
        "a latent-variable model generates exactly one data variable, but 'y' is a second one "
        "(the first is 'x' on line 2); make it a condition ('condition y : ...') or remove it"
    ]


def test_the_family_rules_are_the_plugins_check_hook(plugin):
    # two classes: JEM's E(x) gives one logit per class, the [2] that eps = E(x) needs
    text = _CONDITIONAL_ENERGY.replace("label[3]", "label[2]").replace(
        "  loss dsm", "  predict eps = E(x)\n  loss dsm"
    )
    assert _messages(text) == ["predict has no meaning in an energy-based model"]
    plugin("energy", check=None, conditional=False)
    assert _messages(text) == [
        "conditional energy-based models are not supported yet; remove 'condition y'"
    ]
    plugin("energy", check="gendsl.analysis.family_rules:check_matching")
    assert _messages(text)[0].startswith("unknown prediction 'eps' for an energy-based model")


def test_each_deciding_statement_is_printed_with_the_keyword_its_plugin_names():
    specs = sorted(ROOT.glob("stdlib/*.gen")) + sorted(ROOT.glob("examples/*.gen"))
    seen: set[type] = set()
    for spec in specs:
        for model in parse(spec.read_text(), spec.as_posix()).models:
            for stmt in model.body:
                if type(stmt) in STATEMENTS:
                    seen.add(type(stmt))
                    assert format_statement(stmt).split()[0] == STATEMENTS[type(stmt)]
    deciding = {ast.SDE, ast.Chain, ast.Path, ast.Flow, ast.Critic, ast.Energy}
    assert seen == set(STATEMENTS) == deciding
