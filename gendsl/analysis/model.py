"""The checked model: what the checker hands to the symbolic core and the back ends.

The checker (:func:`gendsl.analysis.check.check_model`) resolves ``extends``/``import``, checks
names, types and shapes, infers every network's input and output shapes from its use, decides the
model's family, and fills a :class:`CheckedModel`.  The back ends read only this object (and the
AST expressions it points to); they never re-check.

Option values (``loss elbo(beta = 4, anneal = linear(0, 1, steps = 100))``, ``train { }``,
network hyper-parameters) are converted to plain Python by :func:`to_value`: numbers stay
numbers, ``true``/``false`` become ``bool``, strings and other bare names become ``str``, lists
become ``list``, and calls become :class:`Opt`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import networkx as nx

from gendsl.frontend import ast
from gendsl.source import Source, Span

__all__ = [
    "CheckedModel",
    "NetSpec",
    "Opt",
    "Shape",
    "Site",
    "VarType",
    "Variable",
    "to_value",
]

#: A per-sample shape; a ``str`` entry is a symbolic size (``D``) bound from the data.
Shape = tuple[int | str, ...]


@dataclass(frozen=True)
class Opt:
    """A library option written as a call: ``linear(0, 1, steps = 100)``, ``ot(exact)``."""

    name: str
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)
    span: Span | None = field(default=None, compare=False, repr=False)


def __getattr__(name: str) -> Any:
    """``FAMILIES``: the names of the model families, from :data:`gendsl.families.TABLE`
    (looked up on first use: the families' modules import this one)."""
    if name == "FAMILIES":
        from gendsl.families import FAMILIES

        return FAMILIES
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def to_value(e: ast.Expr | ast.Option) -> Any:
    """Convert an option's AST to a plain Python value (see the module docstring)."""
    if isinstance(e, ast.Num):
        return e.value
    if isinstance(e, ast.Str):
        return e.value
    if isinstance(e, ast.Name):
        return {"true": True, "false": False}.get(e.id, e.id)
    if isinstance(e, ast.List):
        return [to_value(i) for i in e.items]
    if isinstance(e, ast.Neg) and isinstance(e.operand, ast.Num):
        return -e.operand.value
    if isinstance(e, ast.Call | ast.Option):
        name = e.func if isinstance(e, ast.Call) else e.name
        return Opt(
            name,
            tuple(to_value(a) for a in e.args),
            {k.name: to_value(k.value) for k in e.kwargs},
            e.span,
        )
    raise TypeError(f"not an option value: {e!r}")


@dataclass(frozen=True)
class VarType:
    """A variable's type: ``kind`` is real, binary, image, label or code.

    ``shape`` is the per-sample shape (``label[10]`` has shape ``()`` and ``classes == 10``;
    ``code[K = 64, dim = 16]`` has ``classes == 64`` and the codebook dimension in ``shape``).
    """

    kind: str
    shape: Shape
    classes: int | str | None = None


@dataclass(frozen=True)
class Variable:
    """A named random or deterministic quantity of the model.

    ``role``: ``data`` (observed), ``latent``, ``condition``, ``derived`` (``v = expr``),
    ``noised`` (the ``x_t`` an sde/chain/path introduces), or ``noise`` (``w`` in a path).
    """

    name: str
    role: str
    type: VarType
    span: Span


@dataclass(frozen=True)
class NetSpec:
    """A network and the sizes inferred from where it is used.

    ``inputs`` are the argument names of (the first) use, in order; ``in_shapes`` the shapes of
    the tensor inputs among them (the time ``t`` and a ``label`` condition excluded: ``time`` and
    ``cond_classes`` say whether they enter).  ``out_shape`` is what the use needs, e.g. twice a
    latent's size for ``Normal(enc(x))`` (loc and scale), ``()`` for a critic or an energy.
    """

    name: str
    kind: str
    options: dict[str, Any]
    inputs: tuple[str, ...]
    in_shapes: tuple[Shape, ...]
    out_shape: Shape
    time: bool
    cond_classes: int | str | None
    span: Span


@dataclass(frozen=True)
class Site:
    """A random choice ``name | given ~ dist(params)`` of the model or of the guide.

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
    """One model after checking: everything the back ends need, in evaluation order."""

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
