"""Fixtures of the end-to-end CLI tests: run ``python -m gendsl.cli`` in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from cli_support import REPO

from gendsl.data import fontdigits as fd


@pytest.fixture(scope="session")
def cli_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The environment of every ``gendsl`` subprocess."""
    env = dict(os.environ)
    env["GENDSL_CACHE"] = str(tmp_path_factory.mktemp("gendsl_cache"))
    env["OMP_NUM_THREADS"] = "1"
    env["MKL_NUM_THREADS"] = "1"
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
    return env


Gendsl = Callable[..., subprocess.CompletedProcess]


@pytest.fixture(scope="session")
def gendsl(cli_env: dict[str, str]) -> Gendsl:
    """``gendsl(*args, cwd=None, timeout=120)``: run the CLI, capture text output, no check."""

    def run(*args: str | Path, cwd: Path | None = None, timeout: float = 120):
        return subprocess.run(
            [sys.executable, "-m", "gendsl.cli", *map(str, args)],
            capture_output=True,
            text=True,
            env=cli_env,
            cwd=cwd or REPO,
            timeout=timeout,
        )

    return run


@pytest.fixture(autouse=True)
def in_process_cache(cli_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    """In-process ``main(...)`` calls use the session's cache too (never the user's): the
    digits classifier behind ``digits_fd`` and class agreement is trained there once."""
    monkeypatch.setenv("GENDSL_CACHE", cli_env["GENDSL_CACHE"])


@pytest.fixture
def small_fontdigits(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """The bundled fontdigits recipe at a small size (64/16 images), generated into a
    temporary cache, so a training test on it stays cheap."""
    monkeypatch.setenv("GENDSL_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(fd, "SPLIT_SIZES", {"train": 64, "test": 16})
    fd._cached.cache_clear()
    yield
    fd._cached.cache_clear()
