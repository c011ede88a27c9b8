"""Checks of ``gendsl train``/``sample``/``eval`` arguments that need neither torch nor a spec.

They run before the back ends are imported, so a usage mistake is reported at once (exit 2)
and before anything is written.  Each message says what was wrong and what to do.
"""

from __future__ import annotations

import argparse
import math
import os
from pathlib import Path

from gendsl.errors import UsageError

__all__ = [
    "PLOT_SUFFIXES",
    "RUN_FILES",
    "SAMPLE_SUFFIXES",
    "check_eval_args",
    "check_not_replaced",
    "check_output_folder",
    "check_run_path",
    "check_sample_args",
    "check_train_args",
    "holds_run",
    "parse_list",
]

#: What ``gendsl train`` writes into a run folder; a folder holding any of them holds a run.
RUN_FILES = ("checkpoint.pt", "metrics.jsonl", "spec.gen")
#: File types ``gendsl sample --out`` writes (NumPy array, NumPy archive, torch tensor).
SAMPLE_SUFFIXES = (".npy", ".npz", ".pt")
#: File types ``--plot`` writes.
PLOT_SUFFIXES = (".png", ".pdf", ".svg")


def _at_least(flag: str, value: int | None, low: int) -> None:
    if value is not None and value < low:
        raise UsageError(f"{flag} must be at least {low}, got {value}")


def _positive_finite(flag: str, value: float | None) -> None:
    if value is not None and not (math.isfinite(value) and value > 0):
        raise UsageError(f"{flag} must be a positive number, got {value}")


def _finite(flag: str, value: float | None) -> None:
    if value is not None and not math.isfinite(value):
        raise UsageError(f"{flag} must be a finite number, got {value}")


def _seed(value: int | None) -> None:
    if value is not None and not 0 <= value < 2**32:
        raise UsageError(f"--seed must lie in [0, 2**32), got {value}")


def holds_run(folder: Path) -> bool:
    """Whether ``folder`` holds (a part of) a run that ``gendsl train`` would overwrite."""
    return any((folder / name).exists() for name in RUN_FILES)


def _nearest_existing(path: Path) -> Path:
    path = path.absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _check_writable_place(path: Path, flag: str, what: str) -> None:
    """``path`` (a file or folder still to be made) can be created where it is named."""
    base = _nearest_existing(path.parent if what == "file" else path)
    if not base.is_dir():
        raise UsageError(f"{flag} {path}: {base} is a file, not a folder; choose another path")
    if not os.access(base, os.W_OK | os.X_OK):
        raise UsageError(f"{flag} {path}: cannot write in {base} (permission denied)")


def check_output_folder(out: Path) -> None:
    """``gendsl train --out``: a folder (or nothing yet) in a writable place."""
    if out.exists() and not out.is_dir():
        raise UsageError(
            f"--out {out} is a file; a run is a folder: name a new folder or an existing run"
        )
    _check_writable_place(out, "--out", "folder")


def _output_file(flag: str, path: str | None, suffixes: tuple[str, ...]) -> None:
    if path is None:
        return
    target = Path(path)
    if target.suffix.lower() not in suffixes:
        raise UsageError(
            f"{flag} {path}: unknown file type {target.suffix or '(none)'!r}; "
            f"use one of {', '.join(suffixes)}"
        )
    if target.is_dir():
        raise UsageError(f"{flag} {path} is a folder; name a file")
    if target.name in RUN_FILES and holds_run(target.parent):
        raise UsageError(f"{flag} {path} would overwrite a file of the run in {target.parent}")
    if not target.parent.absolute().is_dir():
        raise UsageError(f"{flag} {path}: no folder {target.parent}; create it first")
    _check_writable_place(target, flag, "file")


def check_run_path(run: str) -> None:
    """``RUN`` of ``sample``/``eval``: a run folder or a checkpoint file, not a spec."""
    path = Path(run)
    if path.suffix == ".gen" and path.is_file():
        raise UsageError(
            f"{run} is a spec, not a trained run; train it first "
            f"(gendsl train {run} --data NAME --out runs/NAME), then pass the run folder"
        )
    if path.is_dir() and not (path / RUN_FILES[0]).is_file():
        raise UsageError(
            f"{run} holds no {RUN_FILES[0]}: not a run folder; train first with gendsl train"
        )
    if not path.exists():
        raise UsageError(f"no run at {run}: expected a run folder or a checkpoint file")


def check_train_args(args: argparse.Namespace) -> None:
    """``gendsl train``: numbers in range, ``--resume`` xor ``--overwrite``, the spec a file."""
    for flag, value in (
        ("--steps", args.steps),
        ("--batch-size", args.batch_size),
        ("--eval-every", args.eval_every),
        ("--checkpoint-every", args.checkpoint_every),
    ):
        _at_least(flag, value, 1)
    _positive_finite("--lr", args.lr)
    _seed(args.seed)
    if args.resume and args.overwrite:
        raise UsageError("--resume continues a run and --overwrite replaces it; pass one")
    if not args.data and not args.resume:
        raise UsageError(
            "--data is required: a bundled set (moons, digits, digits_binary, ...) or a "
            "file/folder"
        )
    spec = Path(args.spec)
    if spec.is_dir():
        raise UsageError(f"{args.spec} is a folder; gendsl train takes a .gen spec file")
    if not spec.is_file():
        raise UsageError(f"no such spec file: {args.spec}")
    if args.out is not None:
        check_output_folder(Path(args.out))
        check_not_replaced(Path(args.out), resume=args.resume, overwrite=args.overwrite)


def check_not_replaced(out: Path, *, resume: bool, overwrite: bool) -> None:
    """A folder that holds a run is trained into only with ``--resume`` or ``--overwrite``."""
    if holds_run(out) and not (resume or overwrite):
        raise UsageError(
            f"{out} holds a run already; pass --resume to continue it, --overwrite to "
            "replace it, or --out to train into another folder"
        )


def check_sample_args(args: argparse.Namespace) -> None:
    """``gendsl sample``: ``-n``, ``--steps``, ``--seed``, output file types and folders."""
    _at_least("-n", args.n, 1)
    _at_least("--steps", args.steps, 1)
    _seed(args.seed)
    _output_file("--out", args.out, SAMPLE_SUFFIXES)
    _output_file("--plot", args.plot, PLOT_SUFFIXES)
    _finite("--guidance-scale", args.guidance_scale)
    check_run_path(args.run)


def check_eval_args(args: argparse.Namespace) -> None:
    """``gendsl eval``: ``-n`` (precision/recall compare a point with its 3 nearest
    neighbours: at least 4 points), steps, seed."""
    _at_least("-n", args.n, 4)
    _at_least("--steps", args.steps, 1)
    _seed(args.seed)
    _finite("--guidance-scale", args.guidance_scale)
    _check_sweeps(args)
    check_run_path(args.run)


def _check_sweeps(args: argparse.Namespace) -> None:
    """``gendsl eval``'s ``--nfe-sweep``, ``--guidance-sweep``, ``--samplers`` and ``--plot``."""
    nfe, guidance = getattr(args, "nfe_sweep", None), getattr(args, "guidance_sweep", None)
    if nfe and guidance:
        raise UsageError("give one of --nfe-sweep and --guidance-sweep, not both")
    if getattr(args, "plot", None) and not (nfe or guidance):
        raise UsageError("--plot draws a sweep: add --nfe-sweep or --guidance-sweep")
    if getattr(args, "samplers", None) and not nfe:
        raise UsageError("--samplers chooses the samplers of --nfe-sweep: add --nfe-sweep")
    _output_file("--plot", getattr(args, "plot", None), PLOT_SUFFIXES)
    if nfe:
        parse_list("--nfe-sweep", nfe, int)
    if guidance:
        parse_list("--guidance-sweep", guidance, float)


def parse_list(flag: str, text: str, kind: type[int] | type[float]) -> list:
    """``--nfe-sweep 5,10,20`` (NFE budgets, each >= 1) / ``--guidance-sweep 0,1,3``:
    comma-separated numbers."""
    try:
        values = [kind(part) for part in text.split(",") if part.strip()]
    except ValueError:
        values = []
    if not values or not all(math.isfinite(v) for v in values):
        example = "5,10,20" if kind is int else "0,1,3"
        raise UsageError(f"{flag} takes comma-separated numbers, e.g. {example}; got {text!r}")
    if kind is int and min(values) < 1:
        raise UsageError(f"{flag}: every NFE budget must be >= 1, got {text!r}")
    return values
