"""Golden diagnostics: every bad program fails with exactly its ``.expected`` text and exit code
1; every good program checks clean.  Regenerate with ``python tests/programs/regen.py``."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
_spec = importlib.util.spec_from_file_location("gendsl_golden_regen", HERE / "regen.py")
regen = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(regen)


@pytest.fixture(autouse=True)
def _at_root(monkeypatch):
    monkeypatch.chdir(ROOT)


BAD = regen.bad_programs()
GOOD = sorted((HERE / "good").glob("*.gen"))


def test_enough_distinct_mistakes():
    assert len(BAD) >= 45
    assert all(p.with_suffix(".expected").is_file() for p in BAD)


@pytest.mark.parametrize("full", BAD, ids=[p.stem for p in BAD])
def test_bad_program_diagnostics(full: Path):
    path = full.relative_to(ROOT)
    code, out, err = regen.check_like_cli(path)
    assert code == 1
    assert out == ""
    assert err == full.with_suffix(".expected").read_text()
    # every diagnostic is located in a file of the test folder, with line and column
    first = err.splitlines()[0]
    assert first.startswith("tests/programs/bad/") and ": error: " in first


@pytest.mark.parametrize("full", GOOD, ids=[p.stem for p in GOOD])
def test_good_program_checks_clean(full: Path):
    code, out, err = regen.check_like_cli(full.relative_to(ROOT))
    assert (code, err) == (0, "")
    assert out.count(" ok\n") >= 1


def test_paths_are_shown_as_given():
    code, _, err = regen.check_like_cli(
        Path(os.path.join("tests", "programs", "bad", "12_duplicate.gen"))
    )
    assert code == 1 and err.startswith("tests/programs/bad/12_duplicate.gen:5:7: error: ")
