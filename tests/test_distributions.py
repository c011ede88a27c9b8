"""The one distribution table (gendsl.distributions) agrees with torch: every row constructs with
its declared parameters, torch refuses exactly the parameters the table calls positive, and
torch's support is the declared one.  The checker and the back ends both read this table."""

from __future__ import annotations

import pytest
import torch

from gendsl.analysis import check_text
from gendsl.distributions import DISTRIBUTIONS, SUPPORTS, DistInfo
from gendsl.errors import SpecErrors
from gendsl.objectives.densities import TORCH_CLASSES, build, unpacker

K = 3  # classes of a Categorical
NAMES = sorted(DISTRIBUTIONS)


def valid_params(info: DistInfo) -> dict[str, torch.Tensor]:
    """Parameters inside their domain: positive ones 1.5, the others i - 1 in table order (so
    Uniform gets low = -1 < high = 0), probs 0.3 (a probability vector for a Categorical)."""
    if info.alternatives:
        probs = torch.full((K,), 1 / K) if info.support == "label" else torch.tensor(0.3)
        return {info.alternatives[0]: probs}
    return {
        p: torch.tensor(1.5 if p in info.positive else i - 1.0) for i, p in enumerate(info.params)
    }


def in_support(info: DistInfo, x: torch.Tensor, params: dict[str, torch.Tensor]) -> torch.Tensor:
    """The declared support as a predicate, written from :data:`SUPPORTS`."""
    whole = x == torch.round(x)
    return {
        "real": torch.isfinite(x),
        "interval": (x >= params.get("low", 0)) & (x <= params.get("high", 0)),
        "positive": x > 0,
        "unit": (x >= 0) & (x <= 1),
        "binary": (x == 0) | (x == 1),
        "label": whole & (x >= 0) & (x <= K - 1),
    }[info.support]


def test_the_table_and_the_torch_constructors_have_the_same_rows():
    assert set(TORCH_CLASSES) == set(DISTRIBUTIONS)


@pytest.mark.parametrize("name", NAMES)
def test_each_row_is_well_formed(name):
    info = DISTRIBUTIONS[name]
    assert info.name == name and info.support in SUPPORTS
    assert set(info.positive) <= set(info.params)
    assert bool(info.params) != bool(info.alternatives)
    assert set(info.torch_names) <= set(info.params)
    assert len(info.packed_names()) == info.n_params()


@pytest.mark.parametrize("name", NAMES)
def test_every_row_constructs_in_torch_with_its_declared_parameters(name):
    info = DISTRIBUTIONS[name]
    params = valid_params(info)
    d = build(name, params, validate=True)
    assert isinstance(d, TORCH_CLASSES[name])
    for p in info.params:  # every declared parameter is the torch parameter of that name
        torch.testing.assert_close(getattr(d, info.torch_name(p)), params[p])
    for p in info.alternatives:  # and both parameterisations construct
        value = params[info.alternatives[0]]
        alt = value.log() - (1 - value).log() if p == "logits" else value
        assert isinstance(build(name, {p: alt}, validate=True), TORCH_CLASSES[name])


@pytest.mark.parametrize("name", NAMES)
def test_torch_refuses_exactly_the_parameters_the_table_calls_positive(name):
    info = DISTRIBUTIONS[name]
    for p in info.params:
        params = valid_params(info)
        params[p] = torch.tensor(-5.0)  # below every other parameter, so Uniform stays ordered
        if p == "high":
            params = {**params, "low": torch.tensor(-6.0)}
        if p in info.positive:
            with pytest.raises(ValueError, match="Expected parameter"):
                build(name, params, validate=True)
        else:
            build(name, params, validate=True)


@pytest.mark.parametrize("name", NAMES)
def test_torch_support_is_the_declared_support(name):
    info = DISTRIBUTIONS[name]
    params = valid_params(info)
    d = build(name, params, validate=True)
    # probes away from the boundary 0 of "positive" (torch's Gamma includes it, a null set)
    probes = torch.tensor([-2.0, -1.0, -0.5, 0.25, 0.5, 1.0, 2.0, 2.5, 7.0])
    torch.testing.assert_close(d.support.check(probes), in_support(info, probes, params))
    assert d.support.is_discrete == (info.support in ("binary", "label"))
    draws = d.sample((200,))
    assert bool(in_support(info, draws, params).all())


@pytest.mark.parametrize("name", [n for n in NAMES if DISTRIBUTIONS[n].packable])
def test_a_packed_output_unpacks_to_parameters_torch_accepts(name):
    info = DISTRIBUTIONS[name]
    event = (K,) if info.support == "label" else (2,)
    out = torch.randn(4, info.n_params(), *event, generator=torch.Generator().manual_seed(0))
    params = unpacker(name, event)(out)
    assert tuple(params) == info.packed_names()
    build(name, params, validate=True)


def test_gamma_needs_a_positive_rate_in_the_checker_as_in_torch():
    """β^α x^(α-1) e^(-βx) / Γ(α) integrates to 1 only for α > 0 and β > 0."""
    assert DISTRIBUTIONS["Gamma"].positive == ("concentration", "rate")
    text = "model m {\n  data x : real[2]\n  x ~ Gamma(2, -1)\n  loss elbo\n}\n"
    with pytest.raises(SpecErrors) as info:
        check_text(text, "m.gen")
    (error,) = info.value.errors
    assert error.message == "rate must be > 0; found -1"
    assert (error.span.line, error.span.column) == (3, 16)
