"""Property tests of the front end.

* Generated programs round-trip: ``parse(format_program(p)) == p`` (spans aside).
* Random token-level mutations of every stdlib spec and every good test program either check
  or fail with a located :class:`~gendsl.errors.GendslError` — never any other exception.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gendsl.analysis import check_text
from gendsl.analysis import library as lib
from gendsl.analysis.library import KEYWORDS
from gendsl.distributions import DISTRIBUTIONS
from gendsl.errors import Diagnostic, SpecErrors
from gendsl.frontend import ast
from gendsl.frontend.parser import parse
from gendsl.frontend.printer import format_program
from gendsl.resources import stdlib_dir

# ------------------------------------------------------------------------------ round trip

names = st.from_regex(r"[a-z][a-z0-9_]{0,5}", fullmatch=True).filter(lambda s: s not in KEYWORDS)
numbers = st.one_of(
    st.integers(min_value=0, max_value=10**6),
    st.floats(min_value=0, max_value=1e6, allow_nan=False, allow_infinity=False),
)
strings = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=8)

atoms = st.one_of(
    numbers.map(ast.Num),
    names.map(ast.Name),
    strings.map(ast.Str),
)


def _compound(children: st.SearchStrategy) -> st.SearchStrategy:
    kwargs = st.lists(st.builds(ast.KwArg, names, children), max_size=2).map(tuple)
    return st.one_of(
        st.builds(ast.BinOp, st.sampled_from("+-*/^"), children, children),
        st.builds(ast.Neg, children),
        st.builds(ast.Index, children, children),
        st.builds(ast.Call, names, st.lists(children, max_size=3).map(tuple), kwargs),
        st.builds(ast.List, st.lists(children, max_size=3).map(tuple)),
    )


exprs = st.recursive(atoms, _compound, max_leaves=12)
calls = st.builds(
    ast.Call,
    names,
    st.lists(exprs, max_size=2).map(tuple),
    st.lists(st.builds(ast.KwArg, names, exprs), max_size=2).map(tuple),
)
options = st.builds(
    ast.Option,
    names,
    st.lists(exprs, max_size=2).map(tuple),
    st.lists(st.builds(ast.KwArg, names, exprs), max_size=2).map(tuple),
)
sizes = st.lists(st.one_of(st.integers(1, 64).map(ast.Num), names.map(ast.Name)), min_size=1)
statements = st.one_of(
    st.builds(
        ast.Decl,
        st.sampled_from(["data", "latent", "condition"]),
        names,
        st.builds(ast.TypeExpr, names, sizes.map(tuple)),
    ),
    st.builds(ast.Let, names, st.lists(names, max_size=2).map(tuple), exprs),
    st.builds(ast.Net, names, calls),
    st.builds(ast.Sample, names, st.lists(names.map(ast.Name), max_size=2).map(tuple), calls),
    st.builds(ast.Assign, names, exprs),
    st.builds(ast.Predict, names, exprs),
    st.builds(ast.Loss, options),
    st.builds(ast.SamplerDecl, options),
    st.builds(ast.Guidance, options),
    st.builds(ast.Train, st.lists(st.builds(ast.KwArg, names, exprs), max_size=3).map(tuple)),
)
models = st.builds(
    ast.Model, names, st.one_of(st.none(), names), st.lists(statements, max_size=6).map(tuple)
)
programs = st.builds(
    ast.Program,
    st.lists(strings.filter(lambda s: "\\" not in s).map(ast.Import), max_size=2).map(tuple),
    st.lists(models, min_size=1, max_size=2).map(tuple),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(programs)
def test_generated_programs_round_trip(program: ast.Program):
    text = format_program(program)
    assert parse(text) == program, text


@settings(max_examples=100, deadline=None)
@given(exprs)
def test_expression_precedence_round_trips(e: ast.Expr):
    program = ast.Program((), (ast.Model("m", None, (ast.Let("a", (), e),)),))
    assert parse(format_program(program)) == program


# ------------------------------------------------------------------------------ mutations

_TOKEN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*|[0-9.]+(?:[eE][+-]?[0-9]+)?|\"[^\"\n]*\"|\S")
GOOD = Path(__file__).resolve().parents[1] / "programs" / "good"
SPECS = sorted(stdlib_dir().glob("*.gen")) + sorted(GOOD.glob("*.gen"))


def _mutate(text: str, data: st.DataObject) -> str:
    spans = [m.span() for m in _TOKEN.finditer(text)]
    kind = data.draw(st.sampled_from(["delete", "swap", "duplicate", "truncate"]))
    i = data.draw(st.integers(0, len(spans) - 2))
    (a, b), (c, d) = spans[i], spans[i + 1]
    if kind == "delete":
        return text[:a] + text[b:]
    if kind == "swap":
        return text[:a] + text[c:d] + text[b:c] + text[a:b] + text[d:]
    if kind == "duplicate":
        return text[:b] + " " + text[a:b] + text[b:]
    return text[:a]


@pytest.mark.parametrize("path", SPECS, ids=[f"{p.parent.name}/{p.stem}" for p in SPECS])
@settings(max_examples=12, deadline=None)
@given(data=st.data())
def test_mutations_fail_only_with_located_errors(path: Path, data: st.DataObject):
    text = _mutate(path.read_text(), data)
    try:
        check_text(text, path.name, search_dir=path.parent)
    except SpecErrors as err:
        assert err.errors and all(e.span is not None for e in err.errors), err.render()
    except Diagnostic as err:
        assert err.span is not None, err.render()


# ------------------------------------------------------------- checker on library vocabulary

_POOL = ["x", "z", "y", "t", "x_t", "w", "dt", "dw", "enc", "dec", "f", "k", "K", "beta", "D"]
_WORDS = sorted(
    {
        *_POOL,
        *DISTRIBUTIONS,
        *lib.NETWORKS,
        *lib.MATH_FUNCTIONS,
        *lib.CONSTRUCTORS,
        "quantize",
        "consistency",
        "true",
    }
)
v_names = st.sampled_from(_POOL)
v_atoms = st.one_of(st.integers(-2, 3).map(ast.Num), v_names.map(ast.Name))


def _v_compound(children: st.SearchStrategy) -> st.SearchStrategy:
    return st.one_of(
        st.builds(ast.BinOp, st.sampled_from("+-*^"), children, children),
        st.builds(ast.Neg, children),
        st.builds(ast.Index, children, children),
        st.builds(
            ast.Call,
            st.sampled_from(_WORDS),
            st.lists(children, max_size=3).map(tuple),
            st.lists(st.builds(ast.KwArg, v_names, children), max_size=1).map(tuple),
        ),
    )


v_exprs = st.recursive(v_atoms, _v_compound, max_leaves=6)
v_calls = st.builds(
    ast.Call,
    st.sampled_from(_WORDS),
    st.lists(v_exprs, max_size=2).map(tuple),
    st.lists(
        st.builds(ast.KwArg, st.sampled_from(["loc", "scale", "logits", "hidden"]), v_exprs),
        max_size=2,
    ).map(tuple),
)
_OPTION_NAMES = sorted(
    {n for f in lib.FAMILY_INFO.values() for n in [*f.losses, *f.samplers]}
    | set(lib.GUIDANCE)
    | set(lib.COUPLINGS)
)
v_options = st.builds(
    ast.Option,
    st.sampled_from(_OPTION_NAMES),
    st.lists(v_exprs, max_size=1).map(tuple),
    st.lists(
        st.builds(ast.KwArg, st.sampled_from(["steps", "beta", "teacher", "scale"]), v_exprs),
        max_size=1,
    ).map(tuple),
)
v_types = st.builds(
    ast.TypeExpr,
    st.sampled_from(sorted(lib.TYPES)),
    st.lists(st.one_of(st.integers(-1, 4).map(ast.Num), v_names.map(ast.Name)), max_size=3).map(
        tuple
    ),
)
v_statements = st.one_of(
    st.builds(ast.Decl, st.sampled_from(["data", "latent", "condition"]), v_names, v_types),
    st.builds(ast.Let, v_names, st.lists(v_names, max_size=1).map(tuple), v_exprs),
    st.builds(ast.Net, v_names, v_calls),
    st.builds(
        ast.Sample, v_names, st.lists(v_names.map(ast.Name), max_size=2).map(tuple), v_calls
    ),
    st.builds(ast.Assign, v_names, v_exprs),
    st.builds(ast.SDE, st.sampled_from(["dx", "dz"]), v_exprs, v_names, v_exprs, v_exprs),
    st.builds(ast.Chain, v_names, v_names, v_calls, v_names, v_exprs, v_exprs),
    st.builds(ast.Path, v_names, v_exprs),
    st.builds(ast.Couple, v_names, v_names, v_options),
    st.builds(ast.Predict, st.sampled_from(["eps", "x0", "v", "score", "velocity"]), v_exprs),
    st.builds(ast.Critic, v_names, st.one_of(st.none(), v_exprs)),
    st.builds(
        ast.Energy,
        v_names,
        st.lists(v_names, min_size=1, max_size=2).map(tuple),
        st.one_of(st.none(), v_exprs),
    ),
    st.builds(ast.Loss, v_options),
    st.builds(ast.SamplerDecl, v_options),
    st.builds(ast.Guidance, v_options),
)
v_programs = st.builds(
    ast.Program,
    st.just(()),
    st.lists(
        st.builds(
            ast.Model,
            st.sampled_from(["a", "b"]),
            st.one_of(st.none(), st.just("a")),
            st.lists(v_statements, max_size=8).map(tuple),
        ),
        min_size=1,
        max_size=2,
    ).map(tuple),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(v_programs)
def test_checker_gives_located_errors_on_generated_programs(program: ast.Program):
    try:
        check_text(format_program(program), "gen.gen")
    except SpecErrors as err:
        assert err.errors and all(e.span is not None for e in err.errors), err.render()
    except Diagnostic as err:
        assert err.span is not None, err.render()
