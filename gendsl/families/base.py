"""The :class:`Family` plugin: everything gendsl knows about one model family, in one object.

A family is recognised by the statements a model writes (``sde`` or ``chain`` make it a
diffusion model, no deciding statement at all makes it a latent-variable model), checked by its
own rules in the checker (a lazy reference into :mod:`gendsl.analysis.family_rules`), derived by a
function that writes its equations into a :class:`~gendsl.symbolic.derived.Section`, lowered by
a builder named by a lazy ``"module:attribute"`` reference (so that checking, drawing and
deriving never import torch), sampled by the samplers it names, and drawn with the node kinds
its statements add to the model graph.

This module imports neither torch nor sympy.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gendsl.ir import CheckedModel
    from gendsl.symbolic.derived import Section

__all__ = ["Derive", "Family", "NodeStyle", "SymbolicCheck", "resolve"]

#: ``derive(model, section)`` writes the family's equations; returns the kernel it derived
#: (an SDE, chain or path kernel) or ``None``.
Derive = Callable[["CheckedModel", "Section"], Any]

#: ``check(model)`` runs the symbolic checks of the family's statements and raises
#: :class:`~gendsl.errors.SpecError` at the first that fails.
SymbolicCheck = Callable[["CheckedModel"], None]


@dataclass(frozen=True)
class NodeStyle:
    """How a kind of graph node is drawn: Graphviz attributes, and the matplotlib marker, face
    colour and line style of :func:`gendsl.analysis.draw.write_graph`."""

    dot: str
    marker: str
    face: str
    line: str = "solid"


@dataclass(frozen=True)
class Family:
    """One model family (module docstring).

    ``recognise``: the statements that put a model in this family, keyword -> syntax-tree
    class (``{"sde": ast.SDE, "chain": ast.Chain}``); the family whose mapping is empty is the
    one a model without any of them belongs to.  ``lower`` and
    ``model_class`` are ``"module:attribute"`` references, resolved by
    :mod:`gendsl.lower.registry` when a model is compiled: the builder
    ``(checked, bindings) -> Model`` and the :class:`~gendsl.lower.base.Model` subclass every
    model it builds is an instance of.  ``samplers``: the sampler names the family offers, the
    default first (the registry's, for a family the sampler registry declares samplers of;
    their options live there).  ``predict_example``: the
    ``predict`` statement the checker suggests when a model of the family lacks one (``None``:
    the family has no ``predict``).  ``nodes``: the graph node kinds the family's statements
    add, with how to draw them.  ``symbolic_check``: the checks of the symbolic core on the
    family's statements (``None``: nothing to check).  ``check``: a lazy reference to the
    family's own rules in the checker, a function ``(cx: Context) -> None`` that reports through
    ``cx.error`` (``None``: none).  ``conditional``: whether its back end trains models with a
    ``condition`` (the checker refuses one otherwise).  ``one_data_variable``: whether a model
    generates exactly one ``data`` variable (the checker refuses a second one).
    """

    name: str
    words: str
    summary: str
    recognise: Mapping[str, type]
    derive: Derive
    lower: str
    model_class: str
    samplers: tuple[str, ...]
    predict_example: str | None = None
    nodes: Mapping[str, NodeStyle] = field(default_factory=lambda: MappingProxyType({}))
    symbolic_check: SymbolicCheck | None = None
    check: str | None = None
    conditional: bool = True
    one_data_variable: bool = True

    @property
    def default_sampler(self) -> str:
        """The sampler a model uses when it declares none: the first of :attr:`samplers`."""
        return self.samplers[0]


def resolve(reference: str) -> Any:
    """The object a ``"package.module:attribute"`` reference names, importing its module.

    :raises ValueError: the reference has no ``:``.
    """
    module, sep, attribute = reference.partition(":")
    if not sep or not module or not attribute:
        raise ValueError(f"expected 'module:attribute', got {reference!r}")
    return getattr(importlib.import_module(module), attribute)
