"""The adversarial family: an implicit generator ``x = G(z)`` trained against a ``critic``."""

from __future__ import annotations

from types import MappingProxyType
from typing import TYPE_CHECKING

from gendsl.families.base import Family
from gendsl.families.text import opt_text, option
from gendsl.frontend import ast

if TYPE_CHECKING:
    from gendsl.ir import CheckedModel
    from gendsl.symbolic.derived import Section

__all__ = ["ADVERSARIAL", "derive"]


def derive(model: CheckedModel, sec: Section) -> None:
    """The minimax objective (Goodfellow et al. 2014) or its Kantorovich dual (Arjovsky et al.
    2017), and the optimal critic."""
    loss = model.loss
    if loss.name == "wasserstein":
        sec.add(
            "objective",
            "min_G max_{||D||_L <= 1} E_data D(x) - E_z D(G(z))  (Kantorovich "
            "dual; Arjovsky et al. 2017)",
            r"\min_G\max_{\|D\|_L\le1}\mathbb E D(x) - \mathbb E D(G(z))",
        )
        sec.add("critic", f"1-Lipschitz via {opt_text(option(loss, 'penalty', None))}")
    else:
        sec.add(
            "objective",
            "min_G max_D E_data log D(x) + E_z log(1 - D(G(z)))  (Goodfellow et al. 2014)",
            r"\min_G\max_D\mathbb E\log D(x) + \mathbb E\log(1-D(G(z)))",
        )
        sec.add(
            "optimal critic",
            "D*(x) = p_data(x) / (p_data(x) + p_g(x))",
            r"D^*(x) = \frac{p_{data}(x)}{p_{data}(x)+p_g(x)}",
        )
        sec.add("loss", opt_text(loss))
    _conditional(model, sec)


def _conditional(model: CheckedModel, sec: Section) -> None:
    """A conditional GAN's lines: the generator's labels and a projection critic."""
    labels = [v.name for v in model.condition_vars() if v.type.kind == "label"]
    if not labels:
        return
    y = labels[0]
    sec.add(
        "conditional",
        f"x = G(z, {y}), {y} ~ Uniform{{0..K-1}} in training (as BigGAN, SN-GAN projection)",
        rf"x = G(z, {y}),\ {y}\sim\mathcal U\{{0..K-1\}}",
    )
    if any(n.options.get("projection") is True for n in model.nets.values()):
        sec.add(
            "projection critic",
            f"D(x, {y}) = psi(phi(x)) + embed({y})^T phi(x)  (Miyato & Koyama 2018)",
            rf"D(x, {y}) = \psi(\phi(x)) + e_{{{y}}}^\top\phi(x)",
        )


ADVERSARIAL = Family(
    name="adversarial",
    words="an adversarial model",
    summary="an implicit generator trained against a critic",
    recognise=MappingProxyType({"critic": ast.Critic}),
    derive=derive,
    lower="gendsl.lower.adversarial:build",
    model_class="gendsl.lower.adversarial:AdversarialModel",
    samplers=("ancestral",),
    check="gendsl.analysis.family_rules:check_adversarial",
)
