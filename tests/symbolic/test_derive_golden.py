"""Every stdlib and example spec derives exactly its golden text (``derive_golden/``); regenerate
with ``python tests/symbolic/derive_golden.py`` and review the diff."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
_spec = importlib.util.spec_from_file_location("gendsl_derive_golden", HERE / "derive_golden.py")
golden = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(golden)

SPECS = golden.specs()


def test_every_spec_has_a_golden_derivation():
    assert len(SPECS) >= 50
    assert {p.name for p in golden.GOLDEN.glob("*.txt")} == {
        golden.golden_file(s).name for s in SPECS
    }


@pytest.mark.parametrize("spec", SPECS, ids=[f"{p.parent.name}/{p.stem}" for p in SPECS])
def test_derivation_is_unchanged(spec: Path):
    assert golden.derivations(spec) == golden.golden_file(spec).read_text()
