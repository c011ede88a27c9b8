"""Golden derivations: what ``gendsl derive`` prints (text and markdown) for every model of
every stdlib and example spec.

``python tests/symbolic/derive_golden.py`` (from the repository root) rewrites every
``derive_golden/*.txt`` file; read each change before committing it.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = Path(__file__).resolve().parent / "derive_golden"


def specs() -> list[Path]:
    """Every stdlib and example spec, relative to the repository root, in name order."""
    return sorted(ROOT.glob("stdlib/*.gen")) + sorted(ROOT.glob("examples/*.gen"))


def golden_file(spec: Path) -> Path:
    """Where the golden derivations of ``spec`` live."""
    return GOLDEN / f"{spec.parent.name}-{spec.stem}.txt"


def derivations(spec: Path) -> str:
    """The text and markdown derivations of every model of ``spec``, freshly computed."""
    from gendsl.analysis.check import check_file
    from gendsl.symbolic.derivation import derive_fresh
    from gendsl.symbolic.derived import render

    out = []
    for model in check_file(spec):
        derivation = derive_fresh(model)
        out += [render(derivation, "text"), render(derivation, "markdown")]
    return "\n".join(out)


def main() -> None:
    """Regenerate every golden file."""
    sys.path.insert(0, str(ROOT))
    GOLDEN.mkdir(exist_ok=True)
    for spec in specs():
        golden_file(spec).write_text(derivations(spec))


if __name__ == "__main__":
    main()
