"""The symbolic checks the checker runs on a model's sde, chain or path.

This module imports sympy only when the model has a process or a path, so checking a latent,
flow, adversarial or energy model stays fast.
"""

from __future__ import annotations

from pathlib import Path

from gendsl.analysis.model import CheckedModel
from gendsl.errors import SpecError
from gendsl.frontend import ast
from gendsl.source import Source

__all__ = ["validate"]


def _source_of(err: SpecError, model: CheckedModel) -> Source | None:
    """The source the error's span points into (an imported base model lives in another file)."""
    if err.span is None or err.span.file == model.source.name:
        return model.source
    try:
        return Source(err.span.file, Path(err.span.file).read_text(encoding="utf-8"))
    except OSError:
        return None


def validate(model: CheckedModel) -> list[SpecError]:
    """Errors of the model's sde (affine drift, x-free diffusion, dt/dw terms, time range),
    chain (variance-preserving Gaussian AR(1) step) or path (linear, right ends); [] if none."""
    if model.process is None and model.path is None:
        return []
    errors: list[SpecError] = []
    try:
        if isinstance(model.process, ast.SDE):
            from gendsl.symbolic.kernel import check_sde

            check_sde(model.process, model.lets)
        elif isinstance(model.process, ast.Chain):
            from gendsl.symbolic.chain import chain_kernel

            chain_kernel(model.process, model.lets)
        if model.path is not None:
            from gendsl.symbolic.path import path_velocity

            path_velocity(model.path, model.lets)
    except SpecError as err:
        err.source = err.source or _source_of(err, model)
        errors.append(err)
    return errors
