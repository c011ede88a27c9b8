"""Lowering: from a checked model to a trainable :class:`~gendsl.lower.base.Model`.

:func:`compile_model` picks the family's back end through :func:`~gendsl.lower.registry.builder`
(the builder its plugin in :mod:`gendsl.families` names, imported on first use); :func:`load`
parses, checks, binds sizes and compiles in one call.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from gendsl.ir import CheckedModel
from gendsl.lower.base import Model
from gendsl.lower.registry import builder
from gendsl.lower.sizes import bind_sizes

__all__ = ["Model", "compile_model", "load"]


def compile_model(checked: CheckedModel, *, bindings: Mapping[str, int] | None = None) -> Model:
    """The compiled model of ``checked``, with symbolic sizes bound by ``bindings`` (a model
    over an autoencoder's latent space wrapped in
    :class:`~gendsl.lower.latent_space.LatentSpaceModel`)."""
    model = builder(checked.family)(checked, dict(bindings or {}))
    if checked.latent_space is None:
        return model
    from gendsl.lower.latent_space import LatentSpaceModel  # loads Pyro: only when needed

    return LatentSpaceModel(model)


def load(
    path_or_text: str | Path, *, model: str | None = None, data: Any = None, **bindings: int
) -> Model:
    """Parse, check and compile a spec (a path or the text itself).

    Symbolic sizes come from ``bindings`` (``D=64``) and, when ``data`` is given, from the data
    set via :func:`~gendsl.lower.sizes.bind_sizes`.  ``model`` picks one model of a file that
    holds several.
    """
    from gendsl.analysis.check import load_checked

    checked = load_checked(path_or_text, model=model)
    sizes = dict(bindings) if data is None else bind_sizes(checked, data, bindings)
    return compile_model(checked, bindings=sizes)
