"""Drawing the model graph is reproducible: the same spec gives the same picture, whatever the
interpreter's string hashing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_png_does_not_depend_on_string_hashing(tmp_path):
    pictures = []
    for seed in ("1", "2"):
        out = tmp_path / f"graph-{seed}.png"
        env = dict(os.environ, PYTHONHASHSEED=seed, PYTHONPATH=str(ROOT))
        subprocess.run(
            [sys.executable, "-m", "gendsl.cli", "graph", "stdlib/sb_cfm.gen", "-o", str(out)],
            cwd=ROOT,
            env=env,
            check=True,
            capture_output=True,
        )
        pictures.append(out.read_bytes())
    assert pictures[0] == pictures[1]
