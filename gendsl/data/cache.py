"""The gendsl cache folder and atomic writes into it."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

__all__ = ["cache_dir", "write_atomic"]


def cache_dir() -> Path:
    """``$GENDSL_CACHE`` if set, else ``~/.cache/gendsl``."""
    return Path(os.environ.get("GENDSL_CACHE") or Path.home() / ".cache" / "gendsl")


def write_atomic(path: Path, write: Callable[[BinaryIO], object]) -> None:
    """Call ``write(f)`` on a temporary file in ``path``'s folder, then rename it over ``path``.

    Readers never see a half-written file, and two processes filling the same cache entry each
    leave a whole one.
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
