"""Golden diagnostics: run every ``bad/*.gen`` as ``gendsl check`` would, compare or regenerate.

``python tests/programs/regen.py`` (from the repository root) rewrites every ``.expected`` file;
read each one before committing it.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BAD = Path("tests/programs/bad")
GOOD = Path("tests/programs/good")


def check_like_cli(path: Path) -> tuple[int, str, str]:
    """What ``gendsl check PATH`` prints: exit code, stdout, stderr (path shown as given)."""
    from gendsl.analysis import check_file, report
    from gendsl.errors import GendslError

    try:
        models = check_file(path)
    except GendslError as err:
        return 1, "", report(err)
    return 0, "".join(f"{path}: model {m.name} ({m.family}) ok\n" for m in models), ""


def bad_programs() -> list[Path]:
    """Every golden program (relative to the repository root), in name order."""
    return sorted((ROOT / BAD).glob("[0-9][0-9]*_*.gen"))


def main() -> None:
    """Regenerate every ``.expected`` file."""
    import os

    os.chdir(ROOT)
    sys.path.insert(0, str(ROOT))
    for full in bad_programs():
        path = full.relative_to(ROOT)
        code, out, err = check_like_cli(path)
        if code != 1:
            print(f"{path}: expected an error, got exit code {code}", file=sys.stderr)
        path.with_suffix(".expected").write_text(out + err)
        print(f"--- {path}\n{out}{err}")


if __name__ == "__main__":
    main()
