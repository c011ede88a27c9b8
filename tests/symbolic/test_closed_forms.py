"""Closed forms remembered as text and read back without sympy: they equal the sympy-lambdified
functions, and a damaged or malicious stored text is refused (nothing runs) and derived again."""

from __future__ import annotations

import json

import pytest
import torch
from symbolic_specs import first, lets_of, model_of
from test_kernel import COSINE, CUSTOM, QUADRATURE, SUBVP, VE, VP

from gendsl import ir
from gendsl.symbolic import closed_forms
from gendsl.symbolic.closed_forms import PATH_NAMES, path_forms, sde_forms
from gendsl.symbolic.safe_expr import Unreadable, check_expr, compile_expr
from gendsl.symbolic.torch_adapter import TORCH_FUNCTIONS, stored_fn, to_process, torch_fns

SDES = {"vp": VP, "subvp": SUBVP, "ve": VE, "custom": CUSTOM, "cosine": COSINE}
PATH = """
  let s(u) = u^3
  path x_t = cos(pi * t / 2) * x0 + sin(pi * t / 2) * x1 + 0.1 * s(t) * (1 - t) * w
"""
GRID = torch.linspace(0.0, 1.0, 101, dtype=torch.float64)


@pytest.fixture(autouse=True)
def fresh_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("GENDSL_CACHE", str(tmp_path))
    return tmp_path


def _sde(body: str):
    model = model_of(body)
    return first(model, ir.SDE), lets_of(model)


def _path():
    model = model_of(PATH, data="data x1 : real[2]")
    return first(model, ir.Path), lets_of(model)


def _derived(forms) -> bool:
    """Whether sympy derived these forms in this call (a cache miss)."""
    return forms.computed is not None


def _assert_same(stored: dict, lambdified: dict) -> None:
    assert set(stored) == set(lambdified)
    for name, fn in lambdified.items():
        expected = fn(GRID)
        got = stored[name](GRID)
        assert got.dtype == torch.float64 and got.shape == GRID.shape, name
        torch.testing.assert_close(got, expected, rtol=1e-13, atol=1e-13 * expected.abs().max())


@pytest.mark.parametrize("name", [*SDES, "quadrature"])
def test_stored_sde_forms_equal_the_lambdified_ones(name):
    sde, lets = _sde(SDES.get(name, QUADRATURE))
    cold = sde_forms(sde, lets)
    warm = sde_forms(sde, lets)
    assert _derived(cold) and not _derived(warm)
    kernel = cold.kernel
    assert (warm.kind, warm.params, warm.T, warm.var) == (
        kernel.kind,
        kernel.params,
        kernel.T,
        kernel.var,
    )
    expected_kind = {"vp": "vp", "subvp": "subvp", "ve": "ve"}.get(name, "affine")
    assert warm.kind == expected_kind
    fns = torch_fns(warm)
    assert set(fns) == ({"f", "g"} if name == "quadrature" else {"f", "g", "a", "s"})
    _assert_same(fns, torch_fns(kernel))
    assert type(to_process(warm)) is type(to_process(kernel))


def test_stored_path_forms_equal_the_lambdified_ones():
    path, lets = _path()
    cold, warm = path_forms(path, lets), path_forms(path, lets)
    assert _derived(cold) and not _derived(warm)
    assert (warm.target, warm.x0, warm.x1, warm.noiseless) == ("x_t", "x0", "x1", False)
    assert warm.texts == cold.texts
    fns = torch_fns(warm)
    assert set(fns) == set(PATH_NAMES)
    _assert_same(fns, torch_fns(cold.kernel))


def test_the_description_text_survives_the_cache():
    sde, lets = _sde(VP)
    cold, warm = sde_forms(sde, lets), sde_forms(sde, lets)
    assert warm.texts == cold.texts
    assert warm.texts["f"] == "-199*t/20 - 1/20"


@pytest.mark.parametrize(
    "text",
    [
        "__import__('os').system('touch pwned')",
        "t.__class__",
        "exp(t).real",
        "open('x')",
        "eval('1')",
        "sqrt(t, 2)",
        "exp(x=t)",
        "(lambda: 1)()",
        "[t][0]",
        "'a'",
        "True + t",
        "t if t else t",
        "t < 1",
        "u + 1",
        "exp",
        "sqrt(t",
        "t" * 30000,
    ],
)
def test_texts_outside_the_language_are_refused_before_anything_runs(text, tmp_path):
    calls = []

    def spy(value):
        calls.append(value)
        return value

    with pytest.raises(Unreadable):
        compile_expr(text, dict.fromkeys(TORCH_FUNCTIONS, spy))
    assert not check_expr(text)
    assert calls == []


def test_refused_texts_name_what_they_found():
    with pytest.raises(Unreadable, match="not a stored closed form: Attribute"):
        stored_fn("t.__class__")


def test_a_big_integer_power_is_a_float_overflow_not_a_hang():
    with pytest.raises(OverflowError):
        compile_expr("9**9**9", {})(1.0)


def _tamper(folder, change) -> None:
    path = folder / "closed_forms.json"
    entries = json.loads(path.read_text())
    for entry in entries.values():
        change(entry)
    path.write_text(json.dumps(entries))


def test_malicious_stored_text_is_refused_and_derived_again(fresh_cache, monkeypatch):
    monkeypatch.chdir(fresh_cache)
    sde, lets = _sde(CUSTOM)
    good = torch_fns(sde_forms(sde, lets))
    attack = "__import__('os').system('touch pwned') + t"
    _tamper(fresh_cache, lambda e: e["exprs"].update(f=attack))
    again = sde_forms(sde, lets)
    assert _derived(again)
    assert again.exprs["f"] != attack
    _assert_same(torch_fns(again), good)
    assert not (fresh_cache / "pwned").exists()
    assert not _derived(sde_forms(sde, lets))  # the derivation replaced the bad entry


@pytest.mark.parametrize(
    "change",
    [
        lambda e: e["exprs"].update(g="foo(t)"),
        lambda e: e["exprs"].pop("g"),
        lambda e: e.update(params="vp"),
        lambda e: e.update(exprs=None),
        lambda e: e.clear(),
    ],
)
def test_damaged_entries_are_derived_again(fresh_cache, change):
    sde, lets = _sde(VP)
    sde_forms(sde, lets)
    _tamper(fresh_cache, change)
    again = sde_forms(sde, lets)
    assert _derived(again) and again.kind == "vp"


def test_an_unreadable_cache_file_counts_as_empty(fresh_cache):
    path, lets = _path()
    (fresh_cache / "closed_forms.json").write_text("{not json")
    assert _derived(path_forms(path, lets))
    assert not _derived(path_forms(path, lets))


def test_the_code_of_the_derivation_is_part_of_the_key(monkeypatch):
    sde, lets = _sde(VP)
    sde_forms(sde, lets)
    monkeypatch.setattr(closed_forms, "_VERSION", "changed")
    assert _derived(sde_forms(sde, lets))


CHAIN = """
  let beta(k) = 0.3 * sin(pi * k / 100)^2 + 0.001
  chain x[k] ~ Normal(sqrt(1 - beta(k)) * x[k-1], sqrt(beta(k))), k in 1..50
"""


def test_chain_betas_are_remembered_exactly(fresh_cache, monkeypatch):
    from gendsl.symbolic import chain

    model = model_of(CHAIN)
    statement, lets = first(model, ir.Chain), lets_of(model)
    expected = [float(b) for b in chain.chain_kernel(statement, lets).betas]
    assert closed_forms.chain_betas(statement, lets) == expected
    monkeypatch.setattr(chain, "chain_kernel", None)  # a warm cache derives nothing
    assert closed_forms.chain_betas(statement, lets) == expected
    _tamper(fresh_cache, lambda e: e.update(betas=[2.0]))
    monkeypatch.undo()
    monkeypatch.setenv("GENDSL_CACHE", str(fresh_cache))
    assert closed_forms.chain_betas(statement, lets) == expected
