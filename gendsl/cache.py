"""gendsl's own cache folder (``$GENDSL_CACHE``, else ``~/.cache/gendsl``) and its JSON files.

Everything kept there is derived from inputs by their hash and only costs time when lost: a
file that cannot be read counts as empty, one that cannot be written is skipped.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

__all__ = ["cache_folder", "read_json", "write_json"]


def cache_folder() -> Path:
    """``$GENDSL_CACHE``, else ``~/.cache/gendsl``."""
    return Path(os.environ.get("GENDSL_CACHE") or Path.home() / ".cache" / "gendsl")


def read_json(name: str) -> object:
    """The JSON value of ``name`` in the cache folder; ``None`` if missing or unreadable."""
    try:
        return json.loads((cache_folder() / name).read_text())
    except (OSError, ValueError):
        return None


def write_json(name: str, value: object) -> None:
    """Replace ``name`` in the cache folder by ``value``, atomically; best effort (a read-only
    home only costs speed)."""
    path = cache_folder() / name
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
        with os.fdopen(fd, "w") as f:
            json.dump(value, f)
        os.replace(tmp, path)
    except OSError:
        pass
