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
    """The density, its score and the contrastive-divergence gradient (Hinton 2002); JEM's
    joint, marginal and classifier (Grathwohl et al. 2020) for a class-conditional energy."""
    _jem(model, sec)
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


def _jem(model: CheckedModel, sec: Section) -> None:
    energy = model.energy
    labels = [v.name for v in model.condition_vars() if v.type.kind == "label"]
    if energy is None or energy.value is not None or not set(labels) & set(energy.params):
        return
    f, y = energy.name, labels[0]
    sec.add(
        "JEM joint",
        f"E(x, {y}) = -{f}(x)[{y}], p(x, {y}) = exp {f}(x)[{y}] / Z  (Grathwohl et al. 2020)",
        rf"E(x, {y}) = -f(x)[{y}],\ p(x, {y}) = e^{{f(x)[{y}]}}/Z",
    )
    sec.add(
        "JEM marginal",
        f"E(x) = -logsumexp_{y} {f}(x)[{y}],  p({y} | x) = softmax {f}(x)",
        rf"E(x) = -\log\sum_{y} e^{{f(x)[{y}]}},\ p({y}|x) = \mathrm{{softmax}} f(x)",
    )
    sec.add("JEM loss", f"-log p({y} | x) (cross-entropy) + the loss of p(x) below")


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
)
