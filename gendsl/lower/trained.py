"""Compiled models of trained runs (opened by :func:`gendsl.trained.open_trained`).

Every model that takes another run (a consistency model's teacher, a ControlNet's base,
reflow's previous flow) and the command-line runs build it here, so a run is rebuilt one way:
the spec from the checkpoint's stored sources, the EMA weights, the data's levels, eval mode.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from torch import Tensor, nn

from gendsl.errors import UsageError
from gendsl.lower.base import Model
from gendsl.train import CHECKPOINT
from gendsl.trained import RunConfig, TrainedRun, open_trained

__all__ = ["compile_config", "compile_run", "trained_weights", "weights_fit"]


def compile_config(
    config: RunConfig,
    *,
    where: str | Path,
    model: str | None = None,
    bindings: Mapping[str, int] | None = None,
) -> Model:
    """The model ``model`` (default: the run's own) of a run's stored configuration (its
    sources, sizes, levels and the runs it embeds) compiled with ``bindings`` (default: the
    run's), untrained weights, eval mode; ``where`` is the run's folder (for messages)."""
    return _compile(TrainedRun(Path(where) / CHECKPOINT, {"config": config}), model, bindings)


def _compile(run: TrainedRun, model: str | None, bindings: Mapping[str, int] | None) -> Model:
    from gendsl.lower import compile_model

    compiled = compile_model(
        run.checked(model), bindings=run.bindings if bindings is None else bindings
    )
    if run.config.get("embedded"):
        compiled.restore_embedded(run.config["embedded"])
    if run.levels:
        compiled.set_data_levels(run.levels)
    return compiled.eval()


def compile_run(
    run: TrainedRun, *, model: str | None = None, bindings: Mapping[str, int] | None = None
) -> Model:
    """The model ``model`` (default: the run's own) of ``run``'s stored spec, compiled with
    ``bindings`` (default: the run's), holding the run's EMA weights, in eval mode.

    :raises UsageError: the weights do not fit the compiled model (other sizes)."""
    compiled = _compile(run, model, bindings)
    checked = compiled.checked
    try:
        compiled.load_state_dict(run.weights())
    except RuntimeError:
        raise UsageError(
            f"the weights of the run {run.path.parent} do not fit model {checked.name} compiled "
            f"with the sizes {dict(compiled.sizes)}; pass a run trained on data of the same shape"
        ) from None
    return compiled.eval()


def trained_weights(source: nn.Module | str | Path) -> dict[str, Tensor]:
    """The weights of a trained model: a compiled model's ``state_dict``, or a run's weights
    with its EMA weights laid over them (:meth:`gendsl.trained.TrainedRun.weights`)."""
    if isinstance(source, nn.Module):
        return dict(source.state_dict())
    return open_trained(source).weights()


def weights_fit(module: nn.Module, weights: Mapping[str, Tensor]) -> bool:
    """Whether ``weights`` load into ``module`` exactly (the same names and shapes), checked
    before anything is copied: ``load_state_dict`` copies every entry that fits before it
    raises for the others."""
    mine = module.state_dict()
    return weights.keys() == mine.keys() and all(
        weights[k].shape == v.shape for k, v in mine.items()
    )
