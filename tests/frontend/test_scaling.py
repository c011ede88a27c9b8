"""The front end's cost grows with the file, not faster: counted work, never wall-clock time."""

from __future__ import annotations

from functools import cached_property

import pytest

from gendsl.analysis import check_text
from gendsl.errors import SpecSyntaxError
from gendsl.frontend.parser import MAX_CHAIN, parse, parse_expr
from gendsl.frontend.printer import format_expr, format_source
from gendsl.source import Source

_VAE = """model vae {{
  data x : binary[4]
  latent z : real[2]
  net enc = MLP(hidden = [8])
  net dec = MLP(hidden = [8])
{lets}  z ~ Normal(0, 1)
  x | z ~ Bernoulli(logits = dec(z))
  guide {{
    z | x ~ Normal(enc(x))
  }}
  loss elbo
}}
"""


def test_the_file_is_split_into_lines_once(monkeypatch):
    splits = []
    original = Source._lines.func

    def counted(self):
        splits.append(self.name)
        return original(self)

    monkeypatch.setattr(Source, "_lines", cached_property(counted))
    Source._lines.__set_name__(Source, "_lines")
    text = _VAE.format(lets="".join(f"  let a{i} = {i}\n" for i in range(500)))
    (model,) = check_text(text, "many.gen")
    assert len(model.lets) == 500
    assert splits == ["many.gen"]


def test_source_lines_are_the_text_lines():
    source = Source("f.gen", "a\nbb\n\nccc")
    assert [source.line(i) for i in range(0, 6)] == ["", "a", "bb", "", "ccc", ""]


@pytest.mark.parametrize("op", ["+", "-", "*", "/"])
def test_a_flat_chain_is_a_list_not_nesting(op):
    terms = [f"a{i}" for i in range(MAX_CHAIN)]
    text = f" {op} ".join(terms)
    expr = parse_expr(text)
    assert format_expr(expr) == text


def test_a_flat_sum_checks_derives_and_formats():
    terms = " + ".join(["0.04 * t"] * 250)
    text = f"""model m {{
  data x : real[2]
  let beta(t) = 0.1 + {terms}
  sde dx = -0.5 * beta(t) * x * dt + sqrt(beta(t)) * dw, t in [0, 1]
  net eps = MLP(hidden = [8], time = fourier)
  predict eps = eps(x_t, t)
  loss dsm
}}
"""
    (model,) = check_text(text, "flat.gen")
    import sympy as sp

    from gendsl.analysis.to_ir import expr_to_ir
    from gendsl.symbolic.expr import symbol, to_sympy

    beta = to_sympy(expr_to_ir(parse_expr("beta(t)")), model.lets)
    assert sp.expand(beta - (sp.Rational(1, 10) + 10 * symbol("t"))) == 0
    assert format_source(text) == text


def test_a_chain_longer_than_the_limit_is_located():
    text = "model m {\n  let s = " + " + ".join(["1"] * (MAX_CHAIN + 1)) + "\n}\n"
    with pytest.raises(SpecSyntaxError) as err:
        parse(text, "long.gen")
    assert str(err.value).startswith(
        f"long.gen:2:11: error: expression too long: more than {MAX_CHAIN} terms in one sum or "
        "product; split it over several let statements"
    )


def test_real_nesting_is_still_refused():
    text = "model m {\n  let s = " + "^".join(["1"] * 230) + "\n}\n"  # right-associative
    with pytest.raises(SpecSyntaxError, match="expression too deeply nested"):
        parse(text, "deep.gen")
