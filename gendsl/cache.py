"""gendsl's own cache folder (``$GENDSL_CACHE``, else ``~/.cache/gendsl``), its JSON files,
and the one atomic write that every file gendsl replaces goes through (cache entries, data
sets, classifiers, checkpoints, formatted specs).

Everything kept in the cache is derived from inputs by their hash and only costs time when
lost: a file that cannot be read counts as empty, one that cannot be written is skipped.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

__all__ = ["cache_folder", "read_json", "write_atomic", "write_json"]


def cache_folder() -> Path:
    """``$GENDSL_CACHE``, else ``~/.cache/gendsl``."""
    return Path(os.environ.get("GENDSL_CACHE") or Path.home() / ".cache" / "gendsl")


def write_atomic(path: Path, write: Callable[[BinaryIO], object]) -> None:
    """Call ``write(f)`` on a temporary file in ``path``'s folder, flush and fsync it, then
    rename it over ``path``.

    Readers never see a half-written file, a crash leaves the old file or the new one, and two
    processes filling the same entry each leave a whole one.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_json(name: str) -> object:
    """The JSON value of ``name`` in the cache folder; ``None`` if missing or unreadable."""
    try:
        return json.loads((cache_folder() / name).read_text())
    except (OSError, ValueError):
        return None


def write_json(name: str, value: object) -> None:
    """Replace ``name`` in the cache folder by ``value``, atomically; best effort (a read-only
    home only costs speed)."""
    with contextlib.suppress(OSError):
        write_atomic(cache_folder() / name, lambda f: f.write(json.dumps(value).encode()))
