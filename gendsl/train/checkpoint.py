"""Atomic, resumable checkpoints that load with ``torch.load(path, weights_only=True)``.

A checkpoint is a dict of plain values (tensors, dicts, lists, str, int, float, bool, None):

``format``, ``step``, ``model`` (state dict), ``ema`` (:meth:`EMA.state_dict` or None),
``optimizers`` (name -> state dict), ``scaler`` (GradScaler state or None), ``rng`` (see
:func:`capture_rng`), ``spec`` (the spec text), ``config`` (the CLI/config dict), ``versions``
(gendsl, torch, python) and ``elapsed`` (training seconds so far).
"""

from __future__ import annotations

import os
import pickle
import platform
import random
import zipfile
from collections.abc import Mapping, Sequence
from importlib import metadata
from pathlib import Path

import numpy as np
import torch
from torch import nn

from gendsl.cache import write_atomic
from gendsl.errors import UsageError

__all__ = [
    "ENTRIES",
    "FORMAT",
    "capture_rng",
    "load_checkpoint",
    "load_weights",
    "plain",
    "remove_stale_temporaries",
    "restore_rng",
    "save_checkpoint",
    "versions",
]

FORMAT = 1
#: The entries every checkpoint of this format has (a training run writes them all).
ENTRIES = ("step", "model", "ema", "optimizers", "rng", "spec", "config")


def versions() -> dict[str, str]:
    """Versions of gendsl, torch and python, recorded in every checkpoint."""
    try:
        gendsl_version = metadata.version("gendsl")
    except metadata.PackageNotFoundError:
        gendsl_version = "unknown"
    return {
        "gendsl": gendsl_version,
        "torch": str(torch.__version__),
        "python": platform.python_version(),
    }


def capture_rng(batch_generator: torch.Generator | None = None) -> dict[str, object]:
    """Every random state training depends on, as tensors and plain values."""
    version, mt, gauss_next = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": {
            "kind": str(kind),
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached),
        },
        "python": {"version": version, "state": list(mt), "gauss_next": gauss_next},
        "batches": None if batch_generator is None else batch_generator.get_state(),
    }


def restore_rng(state: Mapping[str, object], batch_generator: torch.Generator | None = None):
    """Put back the random states :func:`capture_rng` recorded."""
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    n = state["numpy"]
    keys = n["keys"].numpy().astype(np.uint32)
    np.random.set_state((n["kind"], keys, n["pos"], n["has_gauss"], n["cached_gaussian"]))
    p = state["python"]
    random.setstate((p["version"], tuple(p["state"]), p["gauss_next"]))
    if batch_generator is not None and state["batches"] is not None:
        batch_generator.set_state(state["batches"])


def plain(value: object) -> object:
    """``value`` with tuples as lists, subclasses of plain types as the plain type and other
    leaves as strings (for the config)."""
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if value is None or isinstance(value, torch.Tensor):
        return value
    for kind in (bool, int, float):  # exact types: subclasses do not load with weights_only
        if isinstance(value, kind):
            return kind(value)
    return str(value)


def save_checkpoint(path: str | os.PathLike, payload: Mapping[str, object]) -> Path:
    """Write ``payload`` to ``path`` atomically: a temporary file in the same folder, flushed and
    fsync'ed, then ``os.replace``; a crash leaves either the old file or the new one."""
    path = Path(path)
    write_atomic(path, lambda f: torch.save(dict(payload), f))
    if hasattr(os, "O_DIRECTORY"):  # make the rename itself durable (POSIX)
        dir_fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    return path


def remove_stale_temporaries(path: str | os.PathLike) -> None:
    """Delete temporary files a killed :func:`save_checkpoint` of ``path`` left behind."""
    path = Path(path)
    for tmp in path.parent.glob(f".{path.name}.*.tmp"):
        tmp.unlink(missing_ok=True)


def load_checkpoint(
    path: str | os.PathLike, *, entries: Sequence[str] = ENTRIES
) -> dict[str, object]:
    """Load a checkpoint onto the CPU with ``weights_only=True``.

    :raises UsageError: the file does not exist, cannot be read without running code, is not a
        gendsl checkpoint or lacks one of ``entries``; the message says which, in our words.
    """
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"no checkpoint at {str(path)!r}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, OSError):
        # never torch's message: it advises weights_only=False, which runs code from the file
        raise UsageError(_unreadable(path, _why_unreadable(path))) from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise UsageError(_unreadable(path, f"it is not a gendsl checkpoint (format {FORMAT})"))
    missing = [key for key in entries if key not in state]
    if missing:
        raise UsageError(_unreadable(path, f"it lacks the entries {', '.join(missing)}"))
    return state


def _why_unreadable(path: Path) -> str:
    """Why ``torch.load(path, weights_only=True)`` failed, in the user's terms."""
    if path.stat().st_size == 0:
        return "it is empty"
    if zipfile.is_zipfile(path):
        try:
            with zipfile.ZipFile(path) as archive:
                broken = archive.testzip() is not None
        except (zipfile.BadZipFile, OSError, RuntimeError):
            broken = True
        if not broken:
            return (
                "it holds objects other than tensors and plain values, which gendsl never "
                "loads (loading them could run code)"
            )
    return "it is truncated, corrupt or not a torch file"


def _unreadable(path: Path, reason: str) -> str:
    return (
        f"cannot read the checkpoint {str(path)!r}: {reason}; "
        "pass a run folder written by gendsl train (or train the run again)"
    )


def load_weights(path: str | os.PathLike, model: nn.Module, *, ema: bool = True) -> int:
    """Load a checkpoint's weights into ``model`` for sampling or evaluation: the EMA weights
    when the checkpoint has them and ``ema`` is true.  Returns the checkpoint's step."""
    state = load_checkpoint(path)
    model.load_state_dict(state["model"])
    if ema and state["ema"] is not None:
        shadow = state["ema"]["shadow"]
        with torch.no_grad():
            for name, p in model.named_parameters():
                if name in shadow:
                    p.copy_(shadow[name])
    return int(state["step"])
