"""The adversarial family: implicit generators ``x = G(z)`` trained against a ``critic``.

The generator is the spec's sample sites (the noise ``z ~ Normal(0, 1)``) followed by its
assignments (``x = G(z)``), run by the program interpreter (:mod:`gendsl.lower.interpret`)
with reparameterised draws in training and under ``Draw(generator)`` in sampling; the critic
is a network (``critic D``) or an expression of the data variable (``critic c = ...``).
Losses (:mod:`gendsl.objectives.adversarial`):

* ``gan(form = minimax | nonsaturating)`` — Goodfellow et al. 2014;
* ``wasserstein(penalty = clip(c) | gradient(λ) | dragan(λ) | none)`` — Arjovsky et al. 2017,
  Gulrajani et al. 2017, Kodali et al. 2017;
* ``hinge`` — Lim & Ye 2017, Miyato et al. 2018 (with ``spectral_norm = true`` critics).

Training uses the several-player contract of :func:`gendsl.train.fit`: :meth:`param_groups`
gives the ``critic`` and ``generator`` parameters and :meth:`training_step` makes
``critic_steps`` critic updates (each with fresh generated samples against the batch; weights
clipped after each for ``clip``) and then one generator update.  The model has no likelihood.

A conditional GAN (``condition y : label[K]``, ``x = G(z, y)``, ``critic c = D(x, y)``) scores
the data at its own labels and generated samples at theirs, drawn by
:func:`gendsl.lower.conditions.generator_conditions` (uniform labels); networks that take a
label get it in their label embedding (:func:`gendsl.lower.conditions.net_calls`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn

from gendsl.errors import UsageError
from gendsl.ir import CheckedModel, Opt
from gendsl.lower.base import Model
from gendsl.lower.conditions import (
    Conditions,
    generator_conditions,
    net_calls,
    sampling_conditions,
)
from gendsl.lower.expr import compile_expr
from gendsl.lower.handlers import Draw
from gendsl.lower.interpret import Program, names_in
from gendsl.objectives.adversarial import (
    clip_weights_,
    dragan_penalty,
    gan_critic_loss,
    gan_generator_loss,
    gradient_penalty,
    hinge_critic_loss,
    hinge_generator_loss,
    wasserstein_critic_loss,
    wasserstein_generator_loss,
)
from gendsl.protocol import Batch, Capabilities

__all__ = ["AdversarialModel", "build"]


def _penalty(loss: Opt) -> tuple[str, float]:
    """The wasserstein penalty's name and its number (c for clip, λ otherwise)."""
    p = loss.kwargs.get("penalty", "none")
    if isinstance(p, Opt):
        value = p.kwargs.get("c", p.kwargs.get("weight"))
        return p.name, float(value if value is not None else p.args[0])
    return str(p), 0.0


class AdversarialModel(Model):
    """A compiled GAN (see the module docstring)."""

    family = "adversarial"
    capabilities = Capabilities(training_step=True, param_groups=True, diagnostics=True)

    def __init__(self, checked: CheckedModel, bindings: Mapping[str, int]):
        super().__init__(checked, bindings)
        self.data_name = self.sole_data_variable().name
        self.condition_names = [v.name for v in checked.condition_vars()]
        self.nets = nn.ModuleDict({n: self.build_net(s) for n, s in checked.nets.items()})
        self.calls = net_calls(checked, self.nets)
        self.program = Program(self, values=self.calls, packed=False)
        crit = checked.critic
        self._critic_expr = None if crit.value is None else compile_expr(crit.value)
        #: The network that is the whole critic (``critic D``), else None.
        self._critic_net = crit.name if crit.value is None and not crit.params else None
        used = {crit.name} if crit.value is None else names_in(crit.value)
        self.critic_nets = [n for n in self.nets if n in used]
        self.critic_steps = int(checked.train.get("critic_steps", 1))
        if self.critic_steps < 1:
            raise UsageError(f"critic_steps must be >= 1, got {self.critic_steps}")
        self.grad_clip = checked.train.get("grad_clip")
        self.loss_name = checked.loss.name
        self.form = checked.loss.kwargs.get("form", "nonsaturating")
        self.penalty, self.penalty_value = _penalty(checked.loss)

    # ------------------------------------------------------------------ the two players

    def generate(
        self,
        n: int,
        cond: Conditions | None = None,
        *,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """``n`` generated samples x = G(z, y) for the conditions ``cond`` (none for an
        unconditional model); differentiable in G's parameters when ``generator`` is None."""
        handlers = [] if generator is None else [Draw(generator)]
        return self.program.run(handlers, batch=(n,), values=cond)[self.data_name]

    def critic(self, x: Tensor, cond: Conditions | None = None) -> Tensor:
        """The critic's value per sample, [B], of ``x`` under the conditions ``cond``."""
        if self._critic_net is not None:
            return self.nets[self._critic_net](x)
        crit = self.checked.critic
        if self._critic_expr is None:  # critic D(x, y)
            values = {**(cond or {}), self.data_name: x}
            return self.calls[crit.name](*(values[p] for p in crit.params))
        return self._critic_expr(self.program.scope({**(cond or {}), self.data_name: x}))

    def fake_conditions(self, cond: Conditions) -> Conditions:
        """The conditions the generator is trained on (see :mod:`gendsl.lower.conditions`)."""
        if not self.condition_names:
            return {}
        return generator_conditions(self.checked, cond, self.classes_of)

    def critic_parameters(self) -> list[nn.Parameter]:
        """The critic's trainable parameters."""
        return [p for n in self.critic_nets for p in self.nets[n].parameters()]

    def generator_parameters(self) -> list[nn.Parameter]:
        """Every trainable parameter that is not the critic's."""
        critic = {id(p) for p in self.critic_parameters()}
        return [p for p in self.parameters() if id(p) not in critic]

    # ------------------------------------------------------------------ losses (hooks)

    def critic_regulariser(
        self, x: Tensor, x_fake: Tensor, cond: Conditions | None = None
    ) -> Tensor | None:
        """λ times the gradient penalty of WGAN-GP or DRAGAN; None for other losses.  In a
        conditional model the penalty is taken at the real points' conditions."""
        if self.loss_name != "wasserstein" or self.penalty in ("none", "clip"):
            return None

        def critic(v: Tensor) -> Tensor:
            return self.critic(v, cond)

        if self.penalty == "gradient":
            return self.penalty_value * gradient_penalty(critic, x, x_fake)
        return self.penalty_value * dragan_penalty(critic, x)

    def critic_loss(
        self,
        x: Tensor,
        x_fake: Tensor,
        cond: Conditions | None = None,
        fake_cond: Conditions | None = None,
    ) -> Tensor:
        """The loss the critic minimises on real ``x`` (conditions ``cond``) and generated
        ``x_fake`` (conditions ``fake_cond``)."""
        real, fake = self.critic(x, cond), self.critic(x_fake, fake_cond)
        if self.loss_name == "gan":
            return gan_critic_loss(real, fake)
        if self.loss_name == "hinge":
            return hinge_critic_loss(real, fake)
        loss = wasserstein_critic_loss(real, fake)
        reg = self.critic_regulariser(x, x_fake, cond)
        return loss if reg is None else loss + reg

    def generator_loss(self, x_fake: Tensor, fake_cond: Conditions | None = None) -> Tensor:
        """The loss the generator minimises on its samples ``x_fake``."""
        fake = self.critic(x_fake, fake_cond)
        if self.loss_name == "gan":
            return gan_generator_loss(fake, form=self.form)
        if self.loss_name == "hinge":
            return hinge_generator_loss(fake)
        return wasserstein_generator_loss(fake)

    def after_critic_step(self) -> None:
        """WGAN's weight clipping to [-c, c] after each critic update."""
        if self.loss_name == "wasserstein" and self.penalty == "clip":
            clip_weights_(self.critic_parameters(), self.penalty_value)

    # ------------------------------------------------------------------ the model hooks

    def _data(self, batch: Batch) -> tuple[Tensor, Conditions]:
        """The batch's data and its conditions ({} for an unconditional model)."""
        items = self.as_data(batch)
        return items[self.data_name], {k: items[k] for k in self.condition_names}

    def loss(self, batch: Batch) -> Tensor:
        """The sum of both players' losses on one batch, the critic's on detached samples.

        Its gradient in the generator's parameters is the generator's; in the critic's it is
        not a training direction — :func:`~gendsl.train.fit` trains through
        :meth:`training_step`, which updates each player on its own loss.
        """
        x, cond = self._data(batch)
        fake_cond = self.fake_conditions(cond)
        x_fake = self.generate(x.shape[0], fake_cond)
        return self.critic_loss(x, x_fake.detach(), cond, fake_cond) + self.generator_loss(
            x_fake, fake_cond
        )

    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        """The two players' parameters, one optimiser each."""
        return {"critic": self.critic_parameters(), "generator": self.generator_parameters()}

    def _update(self, loss: Tensor, opt: torch.optim.Optimizer) -> None:
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if self.grad_clip:
            params = [p for g in opt.param_groups for p in g["params"]]
            nn.utils.clip_grad_norm_(params, float(self.grad_clip))
        opt.step()

    def training_step(
        self, batch: Batch, step: int, optimizers: Mapping[str, torch.optim.Optimizer]
    ) -> dict[str, Tensor]:
        """``critic_steps`` critic updates against the batch (fresh generated samples each),
        then one generator update (Arjovsky et al. 2017, Algorithm 1); the losses stay on the
        device."""
        x, cond = self._data(batch)
        n = x.shape[0]
        for _ in range(self.critic_steps):
            fake_cond = self.fake_conditions(cond)
            with torch.no_grad():
                x_fake = self.generate(n, fake_cond)
            critic_loss = self.critic_loss(x, x_fake, cond, fake_cond)
            self._update(critic_loss, optimizers["critic"])
            self.after_critic_step()
        fake_cond = self.fake_conditions(cond)
        generator_loss = self.generator_loss(self.generate(n, fake_cond), fake_cond)
        self._update(generator_loss, optimizers["generator"])
        self.step.add_(1)
        c, g = critic_loss.detach(), generator_loss.detach()
        return {"loss": c + g, "critic_loss": c, "generator_loss": g}

    def diagnostics(self, batch: Batch) -> dict[str, float]:
        """The critic's mean value on real and generated samples (their difference is the
        Wasserstein estimate for a Lipschitz critic)."""
        x, cond = self._data(batch)
        real = float(self.critic(x, cond).mean())
        fake = float(self.critic(self.generate(x.shape[0], cond), cond).mean())
        return {"critic_real": real, "critic_fake": fake, "critic_gap": real - fake}

    @torch.no_grad()
    def sample(
        self,
        n: int,
        *,
        method: str | None = None,
        steps: int | None = None,
        generator: torch.Generator | None = None,
        y: Any = None,
        **opts: Any,
    ) -> Tensor:
        """``n`` samples: the noise drawn from ``generator`` and pushed through the generator;
        a conditional model's conditions come as ``y`` (the only condition's value, or a
        mapping from names to values), one value for all samples or one per sample."""
        cond = sampling_conditions(self.checked, y, n, self.like.device)
        self.one_pass_sampling(method, steps, opts)
        return self.generate(n, cond, generator=generator)

    def objective_terms(self) -> list[str]:
        k = self.critic_steps
        critic = {
            "gan": "critic: E softplus(-D(x)) + E softplus(D(G(z)))",
            "hinge": "critic: E relu(1 - D(x)) + E relu(1 + D(G(z)))",
            "wasserstein": "critic: E D(G(z)) - E D(x)",
        }[self.loss_name]
        if self.loss_name == "wasserstein" and self.penalty in ("gradient", "dragan"):
            where = (
                "x_hat between x and G(z)" if self.penalty == "gradient" else "x_hat = x + noise"
            )
            critic += f" + {self.penalty_value:g} E(|grad D(x_hat)| - 1)^2, {where}"
        generator = {
            ("gan", "minimax"): "generator: -E softplus(D(G(z)))  [E log(1 - sigmoid D)]",
            ("gan", "nonsaturating"): "generator: E softplus(-D(G(z)))  [-E log sigmoid D]",
        }.get((self.loss_name, self.form), "generator: -E D(G(z))")
        lines = [f"{critic}  ({k} update{'s' if k > 1 else ''} per step)", generator]
        if self.loss_name == "wasserstein" and self.penalty == "clip":
            lines.append(
                f"critic weights clipped to [-{self.penalty_value:g}, {self.penalty_value:g}]"
            )
        return lines


def build(checked: CheckedModel, bindings: Mapping[str, int]) -> AdversarialModel:
    """The compiled model of a checked adversarial spec."""
    return AdversarialModel(checked, bindings)
