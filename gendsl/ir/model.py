"""The checked model: what the checker hands to the symbolic core and the back ends.

The checker (:func:`gendsl.analysis.check.check_text`) resolves ``extends``/``import``, checks
names, types and shapes, infers every network's input and output shapes from its use, decides the
model's family, and converts the result into a :class:`CheckedModel` of IR nodes
(:mod:`gendsl.analysis.to_ir`).  The back ends read only this object; they never re-check and
never see the syntax tree.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import networkx as nx

from gendsl.ir import nodes as ir
from gendsl.ir.types import NetSpec, Opt, Variable
from gendsl.source import Source, Span

__all__ = ["CheckedModel", "LatentSpace", "Site"]


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
    params: dict[str, ir.Expr]
    packed: ir.Call | None
    span: Span


@dataclass(frozen=True)
class LatentSpace:
    """The model is a model of the latent of a trained autoencoder run: ``use`` names the run
    (``use ae = run("runs/vqvae")``, ``run`` the folder as written), ``data`` is the data the
    autoencoder encodes (``z = ae.encode(x)``; samples are ``x = ae.decode(z)``) and ``latent``
    the model's data variable ``z`` (latent diffusion, Rombach et al. 2022)."""

    use: str
    run: str
    data: Variable
    latent: str
    span: Span


@dataclass
class CheckedModel:
    """One model after checking: everything the back ends need, in evaluation order.

    ``statements`` is every statement of the (merged) model in source order as ``gendsl fmt``
    prints it (what a derivation depends on), ``name_span`` where the model's name is written,
    ``loss_option`` the ``loss`` statement's option as written (``None`` when defaulted; its
    arguments locate option errors).  ``teacher_predict`` is the teacher's ``predict`` when a
    consistency model starts from its teacher (``loss consistency(init = teacher)``): the student
    reads its network through the teacher's parameterisation.
    """

    name: str
    family: str
    source: Source
    statements: tuple[str, ...]
    name_span: Span
    loss_option: ir.Option | None
    variables: dict[str, Variable]
    lets: dict[str, ir.Let]
    nets: dict[str, NetSpec]
    sites: tuple[Site, ...]
    guide: tuple[Site, ...]
    assigns: tuple[ir.Assign, ...]
    flows: dict[str, ir.Flow]
    process: ir.SDE | ir.Chain | None
    path: ir.Path | None
    couple: ir.Couple | None
    predict: ir.Predict | None
    critic: ir.Critic | None
    energy: ir.Energy | None
    guidance: ir.Guidance | None
    loss: Opt
    sampler: Opt | None
    train: dict[str, Any]
    sizes: dict[str, int]
    graph: nx.DiGraph
    conditional: bool = False
    base: str | None = None
    latent_space: LatentSpace | None = None
    teacher_predict: ir.Predict | None = None

    def data_vars(self) -> list[Variable]:
        """The observed variables, in declaration order."""
        return [v for v in self.variables.values() if v.role == "data"]

    def observed_vars(self) -> list[Variable]:
        """The variables a training data set gives: the data variables, or for a model over an
        autoencoder's latent space the data the autoencoder encodes."""
        if self.latent_space is not None:
            return [self.latent_space.data]
        return self.data_vars()

    def condition_vars(self) -> list[Variable]:
        """The conditioning inputs, in declaration order."""
        return [v for v in self.variables.values() if v.role == "condition"]
