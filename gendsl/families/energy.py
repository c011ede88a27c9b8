"""The energy family: unnormalised densities p(x) ∝ exp(-E(x)) (``energy E(x) = ...``)."""

from __future__ import annotations

from types import MappingProxyType
from typing import TYPE_CHECKING

from gendsl import ir
from gendsl.families.base import Family
from gendsl.families.text import opt_text
from gendsl.frontend import ast
from gendsl.ir.printer import format_expr

if TYPE_CHECKING:
    from gendsl.ir import CheckedModel
    from gendsl.symbolic.derived import Section

__all__ = ["ENERGY", "derive"]


def _energy_text(energy: ir.Energy) -> str:
    """``E(x) = expr``, saying where sums run over the per-sample axes."""
    text = f"{energy.name}({', '.join(energy.params)}) = {format_expr(energy.value)}"
    reduces = any(isinstance(n, ir.Call) and n.kind == "reduction" for n in ir.walk(energy.value))
    return text + ("  (sum, mean, norm, dot over each sample's coordinates)" if reduces else "")


def derive(model: CheckedModel, sec: Section) -> None:
    """The density, its score and the contrastive-divergence gradient (Hinton 2002)."""
    sec.add("density", "p(x) = exp(-E(x)) / Z", r"p(x) = e^{-E(x)}/Z")
    energy = model.energy
    if energy is not None and energy.value is not None:
        text = _energy_text(energy)
        latex = text.replace("_", r"\_").replace("^", r"\textasciicircum{}")
        sec.add("energy", text, rf"\text{{{latex}}}")
    sec.add("score", "grad_x log p(x) = -grad_x E(x)", r"\nabla_x\log p = -\nabla_x E")
    if model.loss.name == "contrastive_divergence":
        sec.add(
            "CD gradient",
            "grad_theta NLL = E_data grad E(x) - E_model grad E(x)  (Hinton 2002)",
            r"\nabla_\theta\mathcal L = \mathbb E_{data}\nabla E - \mathbb E_{p}\nabla E",
        )
    else:
        sec.add("loss", opt_text(model.loss))


ENERGY = Family(
    name="energy",
    words="an energy-based model",
    summary="an unnormalised density exp(-E(x))",
    recognise=MappingProxyType({"energy": ast.Energy}),
    derive=derive,
    lower="gendsl.lower.energy:build",
    model_class="gendsl.lower.energy:EnergyModel",
    samplers=("langevin",),
    check="gendsl.analysis.family_rules:check_energy",
    conditional=False,
)
