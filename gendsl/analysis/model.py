"""The checker's record of a model, before it becomes the IR.

The checker (:func:`gendsl.analysis.check.check_text`) resolves ``extends``/``import``, checks
names, types and shapes, infers every network's input and output shapes from its use, decides the
model's family, and fills a :class:`CheckedModel` that still holds syntax-tree nodes; the last
step of checking converts it into :class:`gendsl.ir.CheckedModel` (:mod:`gendsl.analysis.to_ir`),
which is what every consumer below the checker receives.  The value types (:class:`VarType`,
:class:`Variable`, :class:`NetSpec`, :class:`Opt`, ``Shape``) are the IR's
(:mod:`gendsl.ir`), the family names :data:`gendsl.families.FAMILIES`.

Option values (``loss elbo(beta = 4, anneal = linear(0, 1, steps = 100))``, ``train { }``,
network hyper-parameters) are converted to plain Python by :func:`to_value`: numbers stay
numbers, ``true``/``false`` become ``bool``, strings and other bare names become ``str``, lists
become ``list``, and calls become :class:`Opt`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import networkx as nx

from gendsl.frontend import ast
from gendsl.ir.types import NetSpec, Opt, Variable
from gendsl.ir.values import to_value as ir_value
from gendsl.source import Source, Span

__all__ = ["CheckedModel", "Site", "to_value"]


def to_value(e: ast.Expr | ast.Option) -> Any:
    """Convert an option's AST to a plain Python value (see the module docstring)."""
    from gendsl.analysis.to_ir import OPTION_VALUES, expr_to_ir, option_to_ir

    if isinstance(e, ast.Option):
        return ir_value(option_to_ir(e, OPTION_VALUES))
    return ir_value(expr_to_ir(e, OPTION_VALUES))


@dataclass(frozen=True)
class Site:
    """The checker's record of a site (the back ends read :class:`gendsl.ir.Site`).

    A random choice ``name | given ~ dist(params)`` of the model or of the guide.

    ``params`` maps canonical parameter names (``loc``, ``scale``, ``logits``, ``probs``, ...) to
    expressions.  ``packed`` is set instead when one network call gives every parameter
    (``Normal(enc(x))``: the network's output has shape ``(n_params,) + shape(x)``; ``loc =
    out[:, 0]`` and ``scale = softplus(out[:, 1]) + 1e-5``).
    """

    name: str
    given: tuple[str, ...]
    dist: str
    params: dict[str, ast.Expr]
    packed: ast.Call | None
    span: Span


@dataclass
class CheckedModel:
    """One model after checking, with syntax-tree nodes: :func:`gendsl.analysis.to_ir.to_ir`
    turns it into the :class:`gendsl.ir.CheckedModel` the back ends read."""

    name: str
    family: str
    source: Source
    ast: ast.Model
    variables: dict[str, Variable]
    lets: dict[str, ast.Let]
    nets: dict[str, NetSpec]
    sites: tuple[Site, ...]
    guide: tuple[Site, ...]
    assigns: tuple[ast.Assign, ...]
    flows: dict[str, ast.Flow]
    process: ast.SDE | ast.Chain | None
    path: ast.Path | None
    couple: ast.Couple | None
    predict: ast.Predict | None
    critic: ast.Critic | None
    energy: ast.Energy | None
    guidance: ast.Guidance | None
    loss: Opt
    sampler: Opt | None
    train: dict[str, Any]
    sizes: dict[str, int]
    graph: nx.DiGraph
    conditional: bool = False
    base: str | None = None

    def data_vars(self) -> list[Variable]:
        """The observed variables, in declaration order."""
        return [v for v in self.variables.values() if v.role == "data"]

    def condition_vars(self) -> list[Variable]:
        """The conditioning inputs, in declaration order."""
        return [v for v in self.variables.values() if v.role == "condition"]
