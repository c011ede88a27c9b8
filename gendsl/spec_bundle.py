"""The whole resolved source of a spec: its file and every file it imports, by content.

A run stores its :class:`SpecBundle` in the checkpoint, so it rebuilds the model it was trained
from after the files on disk are edited or deleted.  Files are keyed by their path relative to
the main file's folder, as the imports name them (``common.gen``, ``../shared/base.gen``,
``stdlib/vae.gen``); :func:`check_bundle` lays them out in a temporary folder where every
import finds its file next to the importing one, and checks the main file from there.
"""

from __future__ import annotations

import difflib
import posixpath
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from gendsl.analysis import CheckedModel, check_text
from gendsl.analysis.resolve import find_import
from gendsl.frontend.parser import parse

__all__ = ["SpecBundle", "check_bundle", "collect", "describe_changes"]


@dataclass(frozen=True)
class SpecBundle:
    """``files[main]`` is the spec itself; ``files`` maps relative paths to texts."""

    main: str
    files: dict[str, str]

    def plain(self) -> dict[str, object]:
        """The bundle as plain values (it goes into a checkpoint's config)."""
        return {"main": self.main, "files": dict(self.files)}

    @classmethod
    def from_plain(cls, value: Mapping[str, object]) -> SpecBundle:
        """The bundle :meth:`plain` wrote."""
        files = value["files"]
        assert isinstance(files, Mapping)
        return cls(str(value["main"]), {str(k): str(v) for k, v in files.items()})


def collect(path: Path) -> SpecBundle:
    """The spec at ``path`` and, recursively, every file it imports (a checked spec: imports
    that cannot be found were reported by the checker already and are left out)."""
    main = path.name
    files: dict[str, str] = {}
    todo = [(main, path)]
    while todo:
        key, where = todo.pop()
        if key in files:
            continue
        text = where.read_text(encoding="utf-8")
        files[key] = text
        for imp in parse(text, str(where)).imports:
            found = find_import(imp.path, where.parent)
            if found is not None:
                at = posixpath.normpath(posixpath.join(posixpath.dirname(key), imp.path))
                todo.append((at, found[0]))
    return SpecBundle(main, files)


def check_bundle(bundle: SpecBundle, name: str, model: str | None) -> CheckedModel:
    """Check the bundle's main file (reported as ``name``) against the bundled imports only;
    the model named ``model`` (default: the last)."""
    ups = max((k.split("/").count("..") for k in bundle.files), default=0)
    with tempfile.TemporaryDirectory(prefix="gendsl-stored-sources-") as tmp:
        root = Path(tmp).joinpath(*(["up"] * ups))
        for key, text in bundle.files.items():
            target = root / key
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text, encoding="utf-8")
        main = root / bundle.main
        models = check_text(bundle.files[bundle.main], name, search_dir=main.parent)
    return next((m for m in models if m.name == model), models[-1])


def describe_changes(
    old: SpecBundle, new: SpecBundle, *, context: int = 1, limit: int = 40
) -> str:
    """A unified diff of the files that differ between ``old`` and ``new`` (at most ``limit``
    lines), or ``""`` when they are the same; the main files are compared whatever their
    names."""
    before_files = {new.main if k == old.main else k: v for k, v in old.files.items()}
    lines: list[str] = []
    for key in sorted(set(before_files) | set(new.files)):
        before, after = before_files.get(key), new.files.get(key)
        if before == after:
            continue
        lines += difflib.unified_diff(
            (before or "").splitlines(),
            (after or "").splitlines(),
            f"trained/{key}" if before is not None else "/dev/null",
            f"now/{key}" if after is not None else "/dev/null",
            n=context,
            lineterm="",
        )
    if len(lines) > limit:
        lines = [*lines[:limit], f"... ({len(lines) - limit} more lines)"]
    return "\n".join(lines)
