"""The normalizing-flow family: ``flow f { ... }`` with ``x = f(z)`` and a base ``z ~ ...``."""

from __future__ import annotations

from types import MappingProxyType
from typing import TYPE_CHECKING

from gendsl.families.base import Family, NodeStyle
from gendsl.frontend import ast

if TYPE_CHECKING:
    from gendsl.ir import CheckedModel
    from gendsl.symbolic.derived import Section

__all__ = ["FLOW", "derive"]


def derive(model: CheckedModel, sec: Section) -> None:
    """The change of variables (Dinh et al. 2017) and the layers of each flow."""
    sec.add(
        "change of variables",
        "log p(x) = log p_Z(f^-1(x)) + sum_layers log|det J_l|  (Dinh et al. 2017)",
        r"\log p(x) = \log p_Z(f^{-1}(x)) + \sum_l \log|\det J_l|",
    )
    for name, flow in model.flows.items():
        sec.add("layers", f"{name}: {len(flow.body)} top-level layer(s)")
    sec.add("loss", "nll = -E_data log p(x)")


FLOW = Family(
    name="flow",
    words="a normalizing-flow model",
    summary="an invertible map of a base distribution",
    recognise=MappingProxyType({"flow": ast.Flow}),
    derive=derive,
    lower="gendsl.lower.flow:build",
    model_class="gendsl.lower.flow:FlowModel",
    samplers=("ancestral",),
    nodes=MappingProxyType(
        {"flow": NodeStyle('shape=box style="filled,rounded" fillcolor="#f4f4f4"', "s", "#f4f4f4")}
    ),
    check="gendsl.analysis.family_rules:check_flow",
)
