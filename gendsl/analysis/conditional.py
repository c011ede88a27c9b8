"""The rules of conditional adversarial and energy models, checked on the typed IR.

- a conditional GAN's generator and critic both see the condition: the data's assignment
  ``x = G(z, y)`` mentions it, and the critic is called on it (``critic D(x, y)`` or an
  expression such as ``critic c = D(x, y)``), not a bare network ``critic D`` of the data alone;
- a conditional energy is JEM's (Grathwohl et al. 2020): a network energy ``energy E(x, y)``
  whose parameters include the model's one label condition;
- a network declared with ``projection = true`` (Miyato & Koyama 2018) is a critic: it takes a
  label and gives one number.
"""

from __future__ import annotations

from collections.abc import Callable

from gendsl.ir import CheckedModel, nodes
from gendsl.source import Span

__all__ = ["conditional_rules"]

Report = Callable[[str, Span], None]


def _names(e: nodes.Node) -> set[str]:
    return {n.id for n in nodes.walk(e) if isinstance(n, nodes.Name)}


def _adversarial(model: CheckedModel, conditions: list[str], report: Report) -> None:
    first = conditions[0]
    data = {v.name for v in model.data_vars()}
    assigns = [a for a in model.assigns if a.target in data]
    if assigns and not any(_names(a.value) & set(conditions) for a in assigns):
        a = assigns[0]
        report(
            f"the generator of a conditional model must take the condition {first}; "
            f"write e.g. {a.target} = G(..., {first})",
            a.span,
        )
    critic = model.critic
    seen = set(critic.params) if critic is not None and critic.value is None else set()
    if critic is not None and critic.value is not None:
        seen = _names(critic.value)
    if critic is not None and not seen & set(conditions):
        x = next(iter(data), "x")
        report(
            f"the critic of a conditional model must see the condition {first}; write "
            f"critic D({x}, {first}) (a projection discriminator: net D = MLP(..., "
            "projection = true))",
            critic.span,
        )


def _energy(model: CheckedModel, conditions: list[str], report: Report) -> None:
    energy = model.energy
    if energy is None:
        return
    labels = [c for c in conditions if model.variables[c].type.kind == "label"]
    params = ", ".join(energy.params)
    if len(conditions) != 1 or len(labels) != 1 or energy.value is not None:
        report(
            "a conditional energy is JEM's: one label condition y and a network energy "
            f"E(x, y) = -E(x)[y]; write 'condition y : label[K]', 'net {energy.name} = ...' "
            f"and 'energy {energy.name}(x, y)'",
            energy.span,
        )
    elif labels[0] not in energy.params:
        report(
            f"energy {energy.name}({params}) does not take the condition {labels[0]}; write "
            f"energy {energy.name}({params}, {labels[0]})",
            energy.span,
        )


def _projections(model: CheckedModel, report: Report) -> None:
    for spec in model.nets.values():
        if spec.options.get("projection") is not True:
            continue
        if spec.cond_classes is None or spec.out_shape != ():
            report(
                f"network '{spec.name}' has projection = true, a projection discriminator's "
                "head: call it on the data and a label, as a critic (critic "
                f"{spec.name}(x, y))",
                spec.span,
            )


def conditional_rules(model: CheckedModel, report: Report) -> None:
    """Every rule of the module docstring that ``model`` breaks, reported at its statement."""
    _projections(model, report)
    conditions = [v.name for v in model.condition_vars()]
    if not conditions:
        return
    if model.family == "adversarial":
        _adversarial(model, conditions, report)
    elif model.family == "energy":
        _energy(model, conditions, report)
