"""Opening a trained run: the one place that reads a run's checkpoint.

A run directory holds ``checkpoint.pt`` (see :mod:`gendsl.train.checkpoint`); the checkpoint
carries the weights, the EMA weights, the run's configuration and every source file the spec
was checked from (``config["sources"]``, a :class:`~gendsl.spec_bundle.SpecBundle`).
:func:`open_trained` reads it with ``torch.load(weights_only=True)`` (a run cannot execute
code) into a :class:`TrainedRun`, which gives the checked model from the stored sources (so the
run is the same after its files on disk change or disappear) and the weights to sample with.

This module sits below the compiler (it imports the checker, never :mod:`gendsl.lower`): the
command-line runs (:func:`gendsl.runs.open_run`) and the models that take another run (a
consistency model's teacher, a ControlNet's base, reflow's previous flow) open runs through it
and compile them with :func:`gendsl.lower.trained.compile_run`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import Tensor

from gendsl.analysis import check_text
from gendsl.errors import UsageError
from gendsl.ir import CheckedModel
from gendsl.spec_bundle import SpecBundle, check_bundle
from gendsl.train import CHECKPOINT, load_checkpoint

__all__ = ["RunConfig", "TrainedRun", "checkpoint_path", "open_trained"]

#: A run's configuration: ``spec_path``, ``sources``, ``model``, ``data``, ``seed``,
#: ``bindings``, ``levels``, ``settings`` and the pretrained runs it was given.
RunConfig = dict[str, Any]


def checkpoint_path(run: str | Path) -> Path:
    """The checkpoint file of ``run`` (a run directory or the file itself).

    :raises UsageError: there is none."""
    path = Path(run)
    if path.is_dir():
        path = path / CHECKPOINT
    if not path.is_file():
        raise UsageError(f"no checkpoint at {path}; train first with gendsl train")
    return path


@dataclass(frozen=True)
class TrainedRun:
    """A run's checkpoint, read: ``path`` the file, ``state`` its entries."""

    path: Path
    state: Mapping[str, Any]

    @property
    def config(self) -> RunConfig:
        """The run's configuration (empty for a checkpoint written by :func:`gendsl.train.fit`
        without one)."""
        return dict(self.state.get("config") or {})

    @property
    def bindings(self) -> dict[str, int]:
        """The symbolic sizes the run was compiled with."""
        return dict(self.config.get("bindings") or {})

    @property
    def levels(self) -> int | None:
        """The quantisation levels of the run's training data (``None`` when not quantised)."""
        return self.config.get("levels")

    def checked(self, model: str | None = None) -> CheckedModel:
        """The checked model ``model`` (default: the run's own) of the run's spec, checked from
        the sources stored in the checkpoint.  A run of an older version stored its main file
        only: its imports are read from the disk next to the spec's path."""
        config = self.config
        name = str(config.get("spec_path", self.path.parent / "spec.gen"))
        wanted = model or config.get("model")
        if config.get("sources"):
            checked = check_bundle(SpecBundle.from_plain(config["sources"]), name, wanted)
        else:
            models = check_text(str(self.state["spec"]), name, search_dir=Path(name).parent)
            checked = next((m for m in models if m.name == wanted), models[-1])
        if model is not None and checked.name != model:
            raise UsageError(
                f"the run {self.path.parent} holds no model named {model!r} (it was trained "
                f"from {name}, model {config.get('model', checked.name)!r})"
            )
        return checked

    def weights(self, *, ema: bool = True) -> dict[str, Tensor]:
        """The model's state dict, with the EMA weights laid over it when the run has them and
        ``ema`` is true (the weights to sample and evaluate with)."""
        weights = dict(self.state["model"])
        if ema and self.state.get("ema") is not None:
            weights.update(self.state["ema"]["shadow"])
        return weights


def open_trained(run: str | Path) -> TrainedRun:
    """Read the checkpoint of ``run`` (a run directory or checkpoint file) with
    ``weights_only=True``.

    :raises UsageError: there is no checkpoint, or it is not a readable gendsl checkpoint."""
    path = checkpoint_path(run)
    return TrainedRun(path, load_checkpoint(path))
