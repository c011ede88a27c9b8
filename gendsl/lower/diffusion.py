"""The diffusion family's back end: ``sde``/``chain`` specs compiled to trainable models.

:func:`build` (the builder the diffusion plugin names) picks the model class from the spec:
a consistency model for ``predict x0 = consistency(f, ...)``, a guided model for ``guidance
classifier_free | classifier | control``, else the plain
:class:`~gendsl.lower.diffusion_core.DiffusionModel`.
"""

from __future__ import annotations

from collections.abc import Mapping

from gendsl import ir
from gendsl.ir import CheckedModel
from gendsl.lower.diffusion_consistency import ConsistencyModel
from gendsl.lower.diffusion_core import DiffusionModel
from gendsl.lower.diffusion_guidance import (
    ClassifierFreeModel,
    ClassifierGuidedModel,
    ControlNetModel,
)

__all__ = ["build", "model_class"]

_GUIDED = {
    "classifier_free": ClassifierFreeModel,
    "classifier": ClassifierGuidedModel,
    "control": ControlNetModel,
}


def model_class(checked: CheckedModel) -> type[DiffusionModel]:
    """The compiled class of a diffusion spec."""
    if isinstance(checked.predict.value, ir.Consistency):
        return ConsistencyModel
    if checked.guidance is not None:
        return _GUIDED[checked.guidance.value.name]
    return DiffusionModel


def build(checked: CheckedModel, bindings: Mapping[str, int]) -> DiffusionModel:
    """The compiled model of a checked diffusion spec."""
    return model_class(checked)(checked, bindings)
