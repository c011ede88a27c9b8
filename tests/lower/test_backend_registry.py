"""The back end of every family is the builder its plugin names (gendsl.families), and every
model it compiles is an instance of the plugin's model class."""

from __future__ import annotations

from pathlib import Path

import pytest

import gendsl.lower as L
from gendsl.analysis.check import check_file
from gendsl.errors import UsageError
from gendsl.families import FAMILIES, TABLE, resolve
from gendsl.lower.base import Model
from gendsl.lower.registry import builder, model_class

ROOT = Path(__file__).resolve().parents[2]
MODELS = [m for spec in sorted(ROOT.glob("stdlib/*.gen")) for m in check_file(spec)]


@pytest.mark.parametrize("name", FAMILIES)
def test_the_lower_reference_is_a_builder(name):
    build = builder(name)
    assert callable(build) and build is resolve(TABLE[name].lower)


@pytest.mark.parametrize("name", FAMILIES)
def test_the_model_class_is_a_model_of_that_family(name):
    cls = model_class(name)
    assert isinstance(cls, type) and issubclass(cls, Model)
    assert cls.family == name


@pytest.mark.parametrize("checked", MODELS, ids=[m.name for m in MODELS])
def test_every_stdlib_model_compiles_to_its_familys_class(checked):
    model = L.compile_model(checked, bindings={"D": 2, "K": 3})
    assert isinstance(model, model_class(checked.family))
    assert model.family == checked.family


def test_an_unknown_family_has_no_back_end():
    with pytest.raises(UsageError) as info:
        builder("spiking")
    assert str(info.value) == "the spiking family has no back end yet"
