"""The wheel carries the grammar and the standard library (a non-editable install finds them)."""

from __future__ import annotations

import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_wheel_ships_grammar_and_every_stdlib_spec(tmp_path):
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--quiet",
            "-w",
            str(tmp_path),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("gendsl-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "gendsl/grammar/gendsl.lark" in names
    shipped = {
        Path(n).name for n in names if n.startswith("gendsl/stdlib/") and n.endswith(".gen")
    }
    assert shipped == {p.name for p in (ROOT / "stdlib").glob("*.gen")}
    assert len(shipped) >= 31
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "gendsl = gendsl.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()


def test_every_subpackage_is_listed_for_the_wheel():
    text = (ROOT / "pyproject.toml").read_text()
    block = re.search(r"^packages = \[(.*?)\]", text, re.S | re.M).group(1)
    listed = set(re.findall(r'"([\w.]+)"', block))
    found = {
        ".".join(("gendsl", *p.parent.relative_to(ROOT / "gendsl").parts))
        for p in (ROOT / "gendsl").glob("*/**/__init__.py")
    }
    assert "gendsl.families" in found
    assert found <= listed
