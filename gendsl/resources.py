"""Locate the files shipped inside the wheel: the grammar and the standard library."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

__all__ = ["grammar_text", "stdlib_dir", "stdlib_path"]

_ROOT = Path(__file__).resolve().parent.parent


def _package_dir(package: str, fallback: str) -> Path:
    try:
        return Path(str(resources.files(package)))
    except ModuleNotFoundError:  # running from a source tree that was never installed
        return _ROOT / fallback


def grammar_text() -> str:
    """The text of ``gendsl.lark``."""
    return (_package_dir("gendsl.grammar", "grammar") / "gendsl.lark").read_text()


def stdlib_dir() -> Path:
    """The folder holding the standard-library specs."""
    return _package_dir("gendsl.stdlib", "stdlib")


def stdlib_path(name: str) -> Path:
    """The path of ``stdlib/<name>.gen``."""
    return stdlib_dir() / f"{name}.gen"
