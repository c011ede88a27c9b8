"""The back-end registry: each family's builder, named by its plugin in :mod:`gendsl.families`.

A family's :class:`~gendsl.families.Family` names its builder by a lazy reference
(``lower = "gendsl.lower.diffusion:build"``); :func:`builder` imports that module on first use,
so checking and deriving a spec never import torch, and a new back end needs no edit here::

    def build(checked: CheckedModel, bindings: dict[str, int]) -> Model: ...
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from gendsl.errors import UsageError
from gendsl.families import TABLE, Family, resolve

if TYPE_CHECKING:
    from gendsl.ir import CheckedModel
    from gendsl.lower.base import Model

__all__ = ["Builder", "builder", "model_class"]

Builder = Callable[["CheckedModel", dict[str, int]], "Model"]

def _plugin(family: str) -> Family:
    if family not in TABLE:
        raise UsageError(f"the {family} family has no back end yet")
    return TABLE[family]


def builder(family: str) -> Builder:
    """The builder of ``family``'s compiled models, imported from its plugin's ``lower``.

    :raises UsageError: no family of that name.
    """
    return resolve(_plugin(family).lower)


def model_class(family: str) -> type[Model]:
    """The :class:`~gendsl.lower.base.Model` subclass every model of ``family`` is an instance
    of, imported from its plugin's ``model_class``."""
    return resolve(_plugin(family).model_class)
