"""The back-end registry: one builder per model family.

A family's module registers its builder with :func:`register`; :func:`gendsl.lower.compile_model`
imports ``gendsl.lower.<family>`` on first use, so a new back end needs no edit elsewhere::

    @register("diffusion")
    def build(checked: CheckedModel, bindings: dict[str, int]) -> Model: ...
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gendsl.ir import CheckedModel
    from gendsl.lower.base import Model

__all__ = ["BACKENDS", "Builder", "register"]

Builder = Callable[["CheckedModel", dict[str, int]], "Model"]

#: family name -> builder of its compiled :class:`~gendsl.lower.base.Model`.
BACKENDS: dict[str, Builder] = {}


def register(family: str) -> Callable[[Builder], Builder]:
    """Decorator: make ``builder`` the back end of ``family``."""

    def add(builder: Builder) -> Builder:
        BACKENDS[family] = builder
        return builder

    return add
