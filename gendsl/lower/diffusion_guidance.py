"""Guided diffusion models: classifier-free guidance, classifier guidance and ControlNet.

Each is a :class:`~gendsl.lower.diffusion_core.DiffusionModel` that overrides hooks: label
dropout in :meth:`training_conditions`, an extra loss term in :meth:`per_sample_loss`, the
guided score in :meth:`sampling_score_fn`, or a control branch in :meth:`net_output`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gendsl import ir
from gendsl.errors import UsageError
from gendsl.ir import CheckedModel, Opt
from gendsl.lower.base import Model
from gendsl.lower.diffusion_core import Conditions, DiffusionModel, sub_state
from gendsl.nn import copy_for_control
from gendsl.objectives.dsm import perturb, sample_time
from gendsl.processes import ScoreFn
from gendsl.protocol import PretrainedRun

__all__ = [
    "ClassifierFreeModel",
    "ClassifierGuidedModel",
    "ControlNetModel",
    "cfg_score",
    "classifier_guided_score",
    "drop_to_null",
]


def cfg_score(score_cond: Tensor, score_uncond: Tensor, w: float) -> Tensor:
    """s̃ = (1 + w) s(x_t, t, y) - w s(x_t, t, ∅), the classifier-free guided score; the same
    combination of ε predictions since ε = -s_t · score (Ho & Salimans 2022, eq. 6)."""
    return (1 + w) * score_cond - w * score_uncond


def classifier_guided_score(score: Tensor, grad_log_p_y: Tensor, s: float) -> Tensor:
    """∇ log p_t(x | y) ≈ ∇ log p_t(x) + s ∇ log p_t(y | x), the score of the tilted density
    p(x) p(y | x)^s (Dhariwal & Nichol 2021, Sec. 4.1; Song et al. 2021, eq. 14)."""
    return score + s * grad_log_p_y


def drop_to_null(
    c: Tensor, null: Tensor, p: float, *, generator: torch.Generator | None = None
) -> Tensor:
    """Each sample's condition c_i replaced by the null condition ∅ with probability p, so one
    network learns both ε(x_t, t, c) and ε(x_t, t, ∅) (Ho & Salimans 2022, Alg. 1; the learned
    null embedding of text-conditioned latent diffusion, Rombach et al. 2022).  ``c`` is
    ``[B, ...]`` (labels ``[B]``), ``null`` broadcasts against one sample."""
    drawn = {} if generator is None else {"generator": generator}  # torch.compile: no None
    dropped = torch.rand(c.shape[:1], device=c.device, **drawn) < p
    mask = dropped.reshape(-1, *([1] * (c.ndim - 1)))
    return torch.where(mask, null.to(c.dtype).expand_as(c), c)


def _guidance(checked: CheckedModel) -> Opt:
    return checked.guidance.value


def _label_name(model: DiffusionModel) -> str:
    return next(v.name for v in model.checked.condition_vars() if v.type.kind == "label")


def _guided_name(model: DiffusionModel) -> str:
    """The condition classifier-free guidance drops: the label given to the predict network,
    else its real (embedding) condition."""
    given = {a.id for a in model.predict_call.args if isinstance(a, ir.Name)}
    conds = [v for v in model.checked.condition_vars() if v.name in given]
    return next(v.name for v in sorted(conds, key=lambda v: v.type.kind != "label"))


class ClassifierFreeModel(DiffusionModel):
    """``guidance classifier_free(scale = w, drop = p)``: one network learns ε(x_t, t, y) and,
    with the condition replaced by the null one with probability p (:func:`drop_to_null`),
    ε(x_t, t, ∅); sampling uses :func:`cfg_score`.  The null condition of a label is the extra
    class K; of a real condition (an embedding ``real[E]`` or a sequence ``real[L, E]``) a
    learned null embedding of its shape, initialised at zero, as in latent diffusion.
    ``scale`` is w of Ho & Salimans 2022: w = 0 is the plain conditional model and w > 0
    extrapolates away from the unconditional one."""

    def __init__(self, checked: CheckedModel, bindings: Mapping[str, int]):
        super().__init__(checked, bindings)
        opt = _guidance(checked)
        self.guidance_scale = float(opt.kwargs.get("scale", 3.0))
        self.drop = float(opt.kwargs.get("drop", 0.1))
        if not 0 <= self.drop <= 1:
            raise UsageError(f"classifier_free drop must be in [0, 1], got {self.drop}")
        self.label = _guided_name(self)
        self.null_class = self.classes_of(self.label)
        if self.null_class is None:
            self.null_embedding = nn.Parameter(torch.zeros(self.shape_of(self.label)))

    def null_condition(self, like: Tensor) -> Tensor:
        """∅ for a batch shaped like ``like``: the null class, or the null embedding."""
        if self.null_class is not None:
            return torch.full_like(like, self.null_class)
        return self.null_embedding.expand_as(like)

    def training_conditions(self, data: Mapping[str, Tensor]) -> Conditions:
        """The condition replaced by ∅ with probability ``drop`` (while training)."""
        cond = self.conditions(data)
        if self.training and self.label in cond:
            c = cond[self.label]
            c = c.long() if self.null_class is not None else c
            null = self.null_condition(c[:1])[0]
            cond[self.label] = drop_to_null(c, null, self.drop)
        return cond

    def sampling_score_fn(self, cond: Conditions, *, scale: float | None) -> ScoreFn:
        """The guided score; without a label, the unconditional (null-label) score."""
        if self.label not in cond:
            return super().sampling_score_fn(cond, scale=scale)
        w = self.guidance_scale if scale is None else float(scale)
        y = cond[self.label]

        def score_fn(x: Tensor, t: Tensor) -> Tensor:
            both = {**cond, self.label: torch.cat([y, self.null_condition(y)])}
            s_both = self.score(torch.cat([x, x]), torch.cat([t, t]), both)
            s_cond, s_uncond = s_both.chunk(2)
            return cfg_score(s_cond, s_uncond, w)

        return score_fn


class ClassifierGuidedModel(DiffusionModel):
    """``guidance classifier(clf, scale = s)``: an unconditional diffusion model and a noisy
    classifier clf(x_t, t) -> logits over the label, trained jointly (the loss adds the
    classifier's cross-entropy on noised data, t ~ U[t_min, T]); sampling with a label uses
    :func:`classifier_guided_score` (Dhariwal & Nichol 2021)."""

    def __init__(self, checked: CheckedModel, bindings: Mapping[str, int]):
        super().__init__(checked, bindings)
        opt = _guidance(checked)
        self.clf_name = str(opt.args[0] if opt.args else opt.kwargs["clf"])
        self.nets[self.clf_name] = self.build_net(checked.nets[self.clf_name])
        self.guidance_scale = float(opt.kwargs.get("scale", 1.0))
        self.label = _label_name(self)

    def classifier_logits(self, x_t: Tensor, t: Tensor) -> Tensor:
        """clf(c_in(t) x_t, t): logits of p_t(y | x_t), shape [B, K]; the classifier sees the
        noised data preconditioned as the predict network does (:meth:`network_input`)."""
        return self.nets[self.clf_name](self.network_input(x_t, t), t=t)

    def classifier_loss(self, x0: Tensor, y: Tensor) -> Tensor:
        """-log p_t(y | x_t) per sample on x_t = a_t x0 + s_t ε, t ~ U[t_min, T]."""
        t, _ = sample_time(self.process, x0.shape[0], device=x0.device, dtype=x0.dtype)
        a_t, s_t = self.process.marginal(t)
        x_t = perturb(x0, torch.randn_like(x0), a_t, s_t)
        return F.cross_entropy(self.classifier_logits(x_t, t), y.long(), reduction="none")

    def per_sample_loss(self, data: Mapping[str, Tensor]) -> Tensor:
        """The diffusion loss plus the classifier's cross-entropy."""
        if self.label not in data:
            raise UsageError(
                f"classifier guidance trains its classifier on labelled data; the batch has no "
                f"{self.label!r}"
            )
        diffusion = super().per_sample_loss(data)
        return diffusion + self.classifier_loss(data[self.data_name], data[self.label])

    def sampling_score_fn(self, cond: Conditions, *, scale: float | None) -> ScoreFn:
        """The classifier-guided score; without a label, the unconditional score."""
        plain = super().sampling_score_fn(cond, scale=scale)
        if self.label not in cond:
            return plain
        s = self.guidance_scale if scale is None else float(scale)
        y = cond[self.label].long()

        def score_fn(x: Tensor, t: Tensor) -> Tensor:
            with torch.enable_grad():
                x_in = x.detach().requires_grad_(True)
                log_p = F.log_softmax(self.classifier_logits(x_in, t), dim=-1)
                (grad,) = torch.autograd.grad(log_p.gather(1, y[:, None]).sum(), x_in)
            return classifier_guided_score(plain(x, t), grad, s)

        return score_fn


class ControlNetModel(DiffusionModel):
    """``guidance control(base = MODEL, branch = copy(eps), zero_init = true)``: the predict
    network (the base) plus a trainable copy fed the condition through zero-initialised
    projections (Zhang et al. 2023): pred = base(x_t, t) + branch(x_t, t, control = c).

    A label condition enters the branch one-hot.  :meth:`set_base` loads the base model's
    trained weights into the base and the copy and freezes the base; without it both are
    trained from scratch.  Without a condition (``y = None``) the model is the base alone.
    """

    def __init__(self, checked: CheckedModel, bindings: Mapping[str, int]):
        super().__init__(checked, bindings)
        opt = _guidance(checked)
        branch = opt.kwargs.get("branch", "copy")
        self.base_model = str(opt.kwargs.get("base"))
        # the base model's run (--base): without it base and copy train from scratch
        what = f"a trained run of its base model {self.base_model!r}"
        base = PretrainedRun("--base", what, required=False)
        self.capabilities = dataclasses.replace(self.capabilities, runs=(base,))
        self.base_net = (
            str(branch.args[0])
            if isinstance(branch, Opt) and branch.args
            else self.predict_call.func
        )
        self.control = checked.condition_vars()[0]
        classes = self.classes_of(self.control.name)
        shape = (
            (classes,) if self.control.type.kind == "label" else self.shape_of(self.control.name)
        )
        self.branch = copy_for_control(self.nets[self.base_net], shape)
        if str(opt.kwargs.get("zero_init", True)).lower() in ("false", "0"):
            for layer in (self.branch.zero_in, self.branch.zero_out):
                for m in layer.modules():
                    if hasattr(m, "reset_parameters"):
                        m.reset_parameters()

    def control_signal(self, cond: Conditions) -> Tensor | None:
        """The branch's input: the one-hot label, or the condition tensor itself."""
        c = cond.get(self.control.name)
        if c is None or self.control.type.kind != "label":
            return c
        return F.one_hot(c.long(), self.classes_of(self.control.name)).to(self.like.dtype)

    def net_output(self, x_t: Tensor, t: Tensor, cond: Conditions) -> Tensor:
        """base(x_t, t) + branch(x_t, t, control = c)."""
        out = super().net_output(x_t, t, cond)
        c = self.control_signal(cond)
        if c is None:
            return out
        return out + self.call_net(self.predict_call, x_t, t, cond, self.branch, control=c)

    def attach_run(self, flag: str, path: Path) -> None:
        """``--base RUN``: :meth:`set_base`."""
        if flag != "--base":
            super().attach_run(flag, path)
        self.set_base(path)

    def set_base(self, source: Model | str | Path) -> None:
        """Load the base network from a trained model of ``base`` (a compiled model, or a run
        directory / checkpoint file), copy it into the branch, and freeze it."""
        from gendsl.lower.trained import trained_weights, weights_fit

        weights = sub_state(trained_weights(source), f"nets.{self.base_net}.")
        base: nn.Module = self.nets[self.base_net]
        if not weights_fit(base, weights):
            raise UsageError(
                f"the base run's network {self.base_net} does not fit this ControlNet's (its "
                f"weights have other shapes); pass a run of the base model "
                f"{self.base_model!r} trained on data of the same shape"
            )
        base.load_state_dict(weights)
        self.branch.copy.load_state_dict(weights)
        base.requires_grad_(False)
