"""The language reference stays in step with the library and the grammar.

``docs/language.md`` must mention every name of ``gendsl/analysis/library.py`` (distributions,
networks, losses, samplers, flow layers, couplings, guidance, train keys, types, functions) and
every grammar keyword; its generated tables must equal what ``docs/gen_tables.py`` renders now;
every complete model in its code blocks must check clean, and its documented diagnostics
must be exactly what the checker reports.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

from gendsl.analysis import check_text, library
from gendsl.distributions import DISTRIBUTIONS
from gendsl.errors import SpecErrors
from gendsl.frontend.parser import parse
from gendsl.resources import grammar_text

DOCS = Path(__file__).resolve().parent.parent / "docs"
LANGUAGE = (DOCS / "language.md").read_text()
DERIVATIONS = (DOCS / "derivations.md").read_text()


def _gen_tables():
    spec = importlib.util.spec_from_file_location("gen_tables", DOCS / "gen_tables.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _library_names() -> dict[str, set[str]]:
    """Every user-visible name of the library, by category."""
    families = library.FAMILY_INFO.values()
    return {
        "type": set(library.TYPES),
        "distribution": set(DISTRIBUTIONS),
        "network": set(library.NETWORKS),
        "flow layer": set(library.FLOW_LAYERS),
        "loss": {name for f in families for name in f.losses},
        "sampler": {name for f in families for name in f.samplers},
        "prediction": {p for f in families for p in f.predicts},
        "coupling": set(library.COUPLINGS),
        "guidance": set(library.GUIDANCE),
        "train key": set(library.TRAIN),
        "function": {
            *library.MATH_FUNCTIONS,
            *library.REDUCTIONS,
            *library.CONSTRUCTORS,
            *library.SPECIAL_FUNCTIONS,
        },
        "constant": set(library.CONSTANTS),
        "keyword": set(library.KEYWORDS),
    }


def _documented(name: str, text: str) -> bool:
    """``name`` appears as code: `name`, `name(...)`, `name = ...` or inside a code block."""
    blocks = re.findall(r"```.*?```", text, re.S)
    inline = re.findall(r"`([^`\n]+)`", re.sub(r"```.*?```", "", text, flags=re.S))
    code = blocks + inline
    return any(re.search(rf"(?<![\w]){re.escape(name)}(?![\w])", c) for c in code)


@pytest.mark.parametrize("category", sorted(_library_names()))
def test_every_library_name_is_in_the_reference(category):
    missing = sorted(n for n in _library_names()[category] if not _documented(n, LANGUAGE))
    assert not missing, f"docs/language.md lacks these {category} names: {missing}"


def test_every_option_parameter_is_in_the_reference():
    specs = [
        *library.NETWORKS.values(),
        *library.FLOW_LAYERS.values(),
        *library.COUPLINGS.values(),
        *library.GUIDANCE.values(),
        *(
            s
            for f in library.FAMILY_INFO.values()
            for s in (*f.losses.values(), *f.samplers.values())
        ),
    ]
    missing = sorted(
        {f"{s.name}.{p}" for s in specs for p in s.params if not _documented(p, LANGUAGE)}
    )
    assert not missing, missing


def test_the_documented_check_can_fail():
    assert not _documented("no_such_sampler_xyz", LANGUAGE)
    assert _documented("dpm_solver", "use `dpm_solver(order = 2)`")
    assert not _documented("ode", "use `dopri5`")


def test_generated_tables_are_up_to_date():
    gen = _gen_tables()
    assert gen.splice(LANGUAGE, gen.render()) == LANGUAGE, "run: python docs/gen_tables.py"


def test_generated_tables_show_defaults_from_the_library():
    tables = _gen_tables().render()
    k = library.FAMILY_INFO["latent"].losses["iwae"].params["k"].default
    assert f"`k = {k}` (int)" in tables
    order = library.FAMILY_INFO["diffusion"].samplers["dpm_solver"].params["order"].default
    assert re.search(rf"\| `dpm_solver` \| .*`order = {order}`", tables)


def test_every_grammar_keyword_is_reserved_in_the_reference():
    keywords = set(re.findall(r'"([a-z]+)"', grammar_text()))
    assert keywords <= set(library.KEYWORDS)
    lexical = LANGUAGE.split("## Grammar", 1)[0]
    missing = sorted(k for k in keywords if not re.search(rf"\b{k}\b", lexical))
    assert not missing, missing


def _blocks(text: str, lang: str = "") -> list[str]:
    """The code blocks fenced as ``lang`` (a diagnostic's bad spec aside)."""
    fences = re.finditer(r"(<!-- diagnostic -->\s*)?```(\w*)\n(.*?)```", text, re.S)
    return [m.group(3) for m in fences if m.group(2) == lang and not m.group(1)]


def test_complete_models_in_the_reference_check_clean():
    models = _blocks(LANGUAGE, "gen")
    assert len(models) >= 3
    for block in models:
        assert parse(block, "language.md").models
        assert check_text(block, "language.md")


def test_documented_diagnostics_are_what_the_checker_reports():
    pairs = re.findall(
        r"<!-- diagnostic -->\s*```gen\n(.*?)```\s*```text\n(.*?)```", LANGUAGE, re.S
    )
    assert len(pairs) >= 2
    for spec, report in pairs:
        with pytest.raises(SpecErrors) as info:
            check_text(spec, "bad.gen")
        assert str(info.value).rstrip("\n") == report.rstrip("\n")


def test_derivations_cover_each_derived_quantity():
    for topic in (
        "perturbation kernel",
        "chain",
        "velocity",
        "ELBO",
        "reverse",
        "probability flow",
    ):
        assert topic.lower() in DERIVATIONS.lower(), topic
    assert len(re.findall(r"\b(19|20)\d\d\b", DERIVATIONS)) >= 8  # cited years


def test_the_ebnf_uses_every_literal_token_of_the_grammar():
    ebnf = next(b for b in _blocks(LANGUAGE) if b.startswith("program"))
    rules = re.sub(r"/[^/\n]*/", "", grammar_text())  # drop the terminals' regular expressions
    literals = set(re.findall(r'"([^"\s]+)"', rules))
    assert {"model", "~", "..", "^"} <= literals
    missing = sorted(tok for tok in literals if f'"{tok}"' not in ebnf)
    assert not missing, missing
