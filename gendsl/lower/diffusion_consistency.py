"""Consistency models: ``predict x0 = consistency(f, sigma_data = ..)`` with ``loss
consistency(teacher = MODEL, solver, steps, metric)`` (Song, Dhariwal, Chen & Sutskever 2023,
"Consistency Models", ICML).

The model works in the variance-exploding view of the declared process, y = x_t / a_t = x0 + σ ε
with σ = s_t / a_t (:mod:`gendsl.objectives.consistency`), on σ in [σ(t_min), σ(T)].  The
consistency function is f_θ(y, σ) = c_skip(σ) y + c_out(σ) F_θ(c_in(σ) y, c_noise(σ)) with
c_noise(σ) = ¼ ln σ (Karras et al. 2022, Table 1), so f_θ(y, σ_min) = y exactly.  With
``init = teacher`` the network is read the teacher's way instead: the x0 its ``predict``
implies at x_t = a_t y, t = t(σ), is the denoiser D_θ(y, σ), and f_θ is the consistency function
of that denoiser (:func:`~gendsl.objectives.consistency.consistency_from_denoiser`); the
network starts with the teacher's weights, so f_θ starts as the teacher's one-step denoiser
(Song et al. 2023, Sec. 6).

Training: distillation when the loss names a ``teacher`` (the teacher's trained weights are
given with :meth:`ConsistencyModel.set_teacher`: a compiled model or a run directory), else
consistency training.  The target network θ⁻ is an EMA of θ with decay :attr:`target_decay`
(0.95, the distillation setting of Song et al. 2023), updated at the start of every training
loss evaluation, i.e. after the previous optimiser step.  Sampling: ``onestep`` is
x = f_θ(σ_max z, σ_max); ``multistep(steps = n)`` re-noises to n - 1 lower levels of the
Karras discretisation (Algorithm 1).  The x0 prediction also gives a score, so every diffusion
sampler and the PF-ODE likelihood work on a consistency model too.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from gendsl import ir, sampler_registry
from gendsl.errors import UsageError
from gendsl.ir import CheckedModel
from gendsl.lower.base import Model
from gendsl.lower.diffusion_core import SIGMA_DATA, Conditions, DiffusionModel
from gendsl.objectives.consistency import (
    consistency_distillation_loss,
    consistency_fn,
    consistency_from_denoiser,
    consistency_sample,
    consistency_training_loss,
    karras_sigmas,
    process_sigma_range,
    ve_score_from_process,
)
from gendsl.objectives.dsm import score_from_prediction
from gendsl.processes import ScoreFn, expand_like
from gendsl.processes.edm import t_of_sigma
from gendsl.processes.params import x0_from_score
from gendsl.protocol import PretrainedRun

__all__ = ["ConsistencyModel", "c_noise"]

#: EMA decay of the target network θ⁻ (Song et al. 2023, Sec. 6: μ = 0.95 for distillation).
TARGET_DECAY = 0.95


def c_noise(sigma: Tensor) -> Tensor:
    """c_noise(σ) = ¼ ln σ, the network's noise input (Karras et al. 2022, Table 1)."""
    return 0.25 * torch.log(sigma)


class ConsistencyModel(DiffusionModel):
    """A consistency model compiled from a diffusion spec (see the module docstring)."""

    def __init__(self, checked: CheckedModel, bindings: Mapping[str, int]):
        super().__init__(checked, bindings)
        self.sigma_data = self._consistency().sigma_data
        self.sigma_min, self.sigma_max = process_sigma_range(self.process)
        opts = self.loss_opt.kwargs
        self.teacher_name: str | None = opts.get("teacher")
        if self.teacher_name is not None:  # distillation needs its teacher's run
            what = f"a trained run of its teacher {self.teacher_name!r}"
            teacher = PretrainedRun("--teacher", what, required=True)
            self.capabilities = dataclasses.replace(self.capabilities, runs=(teacher,))
        self.solver = str(opts.get("solver", "heun"))
        self.metric = str(opts.get("metric", "l2"))
        self.N = int(opts.get("steps", 18))
        self.start: ir.Predict | None = checked.teacher_predict  # init = teacher
        self.target = copy.deepcopy(self.nets[self.f_name]).requires_grad_(False)
        self.target_decay = TARGET_DECAY
        self._teacher: DiffusionModel | None = None

    def _consistency(self) -> ir.Consistency:
        """The checked ``consistency(f, sigma_data = ...)`` of ``predict x0``."""
        value = self.checked.predict.value
        assert isinstance(value, ir.Consistency)
        return value

    def _predict_call(self) -> ir.Call | None:
        """Build the network ``f`` of ``consistency(f, ...)``; there is no plain call."""
        self.f_name = self._consistency().net.id
        self.nets[self.f_name] = self.build_net(self.checked.nets[self.f_name])
        return None

    # ------------------------------------------------------------------ the consistency function

    def f_theta(self, y: Tensor, sigma: Tensor, *, target: bool = False) -> Tensor:
        """f(y, σ) with the online network, or the target network θ⁻ when ``target``."""
        net = self.target if target else self.nets[self.f_name]
        if self.start is not None:
            return consistency_from_denoiser(
                lambda y_, s: self.teacher_style_x0(net, y_, s),
                y,
                sigma,
                sigma_data=self.sigma_data,
                sigma_min=self.sigma_min,
            )
        return consistency_fn(
            lambda x_in, s: net(x_in, t=c_noise(s)),
            y,
            sigma,
            sigma_data=self.sigma_data,
            sigma_min=self.sigma_min,
        )

    def teacher_style_x0(self, net: torch.nn.Module, y: Tensor, sigma: Tensor) -> Tensor:
        """D(y, σ): the x0 that ``net`` predicts when called as the teacher's ``predict`` (its
        kind, its preconditioning) at t = t(σ), x_t = a_t y (Tweedie's formula from the implied
        score)."""
        assert self.start is not None
        t = t_of_sigma(self.process, sigma)
        a_t, s_t = self.process.marginal(t)
        x_t = expand_like(a_t, y) * y
        call = self.start.value
        assert isinstance(call, ir.Call)
        kind = self.start.kind
        out = self.call_net(call, x_t, t, {}, net, kind=kind, sigma_data=SIGMA_DATA)
        return x0_from_score(x_t, score_from_prediction(kind, out, x_t, a_t, s_t), a_t, s_t)

    def net_output(self, x_t: Tensor, t: Tensor, cond: Conditions) -> Tensor:
        """The x0 prediction at (x_t, t): f_θ(x_t / a_t, s_t / a_t)."""
        a_t, s_t = self.process.marginal(t)
        return self.f_theta(x_t / expand_like(a_t, x_t), s_t / a_t)

    def sigmas(self) -> Tensor:
        """The N increasing Karras levels σ_1 = σ_min < ... < σ_N = σ_max (Song et al. 2023)."""
        like = self.like
        return karras_sigmas(
            self.N, self.sigma_min, self.sigma_max, device=like.device, dtype=like.dtype
        )

    # ------------------------------------------------------------------ teacher and target

    def attach_run(self, flag: str, path: Path) -> None:
        """``--teacher RUN``: :meth:`set_teacher`."""
        if flag != "--teacher":
            super().attach_run(flag, path)
        self.set_teacher(path)

    def set_teacher(self, source: Model | str | Path) -> None:
        """The distillation teacher: a compiled diffusion model, or the run directory /
        checkpoint file of one (the model named by the loss's ``teacher``, compiled from the
        sources stored in the checkpoint with this model's sizes, and its EMA weights).  With
        ``init = teacher`` the network f and its target θ⁻ take the teacher's network's
        weights (a resumed run's checkpoint then replaces them)."""
        if isinstance(source, Model):
            teacher = source
        else:
            from gendsl.lower.trained import compile_run
            from gendsl.trained import open_trained

            run = open_trained(source)
            teacher = compile_run(run, model=self.teacher_name, bindings=self.sizes)
        if not isinstance(teacher, DiffusionModel):
            raise UsageError(f"the teacher must be a diffusion model, got the {teacher.family}")
        weights = self._start_weights(teacher) if self.start is not None else None
        teacher.eval().requires_grad_(False)
        object.__setattr__(self, "_teacher", teacher)  # not a submodule: not saved or trained
        if weights is not None:
            self.nets[self.f_name].load_state_dict(weights)
            self.target.load_state_dict(weights)

    def _start_weights(self, teacher: DiffusionModel) -> dict[str, Tensor]:
        """The weights of the teacher's ``predict`` network, checked to fit ``f`` (before
        anything is copied)."""
        from gendsl.lower.trained import weights_fit

        assert self.start is not None and isinstance(self.start.value, ir.Call)
        name = self.start.value.func
        weights = teacher.nets[name].state_dict() if name in teacher.nets else {}
        if not weights_fit(self.nets[self.f_name], weights):
            raise UsageError(
                f"init = teacher: the teacher has no network {name} of the shape of "
                f"{self.f_name}; pass a run of {self.teacher_name!r} trained on data of the "
                "same shape"
            )
        return dict(weights)

    @torch.no_grad()
    def update_target(self) -> None:
        """θ⁻ ← μ θ⁻ + (1 - μ) θ (Song et al. 2023, Algorithm 2)."""
        for p_target, p in zip(
            self.target.parameters(), self.nets[self.f_name].parameters(), strict=True
        ):
            p_target.lerp_(p, 1 - self.target_decay)

    def teacher_score(self) -> ScoreFn:
        """The teacher's score in the VE view, ∇_y log p_σ(y)."""
        if self._teacher is None:
            raise UsageError(
                f"consistency distillation needs the trained teacher {self.teacher_name!r}: "
                f"call set_teacher(run directory or model) first"
            )
        teacher = self._teacher.to(self.like.device)
        return ve_score_from_process(teacher.process, teacher.sampling_score_fn({}, scale=None))

    # ------------------------------------------------------------------ loss and sampling

    def per_sample_loss(self, data: Mapping[str, Tensor]) -> Tensor:
        """Consistency distillation (a teacher) or training (none) per data point."""
        if self.training and torch.is_grad_enabled():
            self.update_target()
        x0 = data[self.data_name]

        def f_target(y: Tensor, sigma: Tensor) -> Tensor:
            return self.f_theta(y, sigma, target=True)

        if self.teacher_name is not None:
            return consistency_distillation_loss(
                self.f_theta,
                f_target,
                self.teacher_score(),
                x0,
                self.sigmas(),
                solver=self.solver,
                metric=self.metric,
            )
        return consistency_training_loss(
            self.f_theta, f_target, x0, self.sigmas(), metric=self.metric
        )

    def sampling_sigmas(self, steps: int) -> Tensor:
        """σ_max and the next ``steps - 1`` levels of a ``steps + 1``-point Karras grid."""
        if steps < 1:
            raise UsageError(f"consistency sampling needs steps >= 1, got {steps}")
        if steps == 1:
            return torch.tensor([self.sigma_max], device=self.like.device, dtype=self.like.dtype)
        grid = karras_sigmas(
            steps + 1,
            self.sigma_min,
            self.sigma_max,
            device=self.like.device,
            dtype=self.like.dtype,
        )
        return grid.flip(0)[:-1]

    def sampler_kinds(self) -> tuple[str, ...]:
        """The process's samplers on the implied score, and the consistency samplers."""
        return (*super().sampler_kinds(), "consistency")

    @torch.no_grad()
    def sample(
        self,
        n: int,
        *,
        method: str | None = None,
        steps: int | None = None,
        generator: torch.Generator | None = None,
        y: Any = None,
        score_fn: ScoreFn | None = None,
        **opts: Any,
    ) -> Tensor:
        """``onestep``/``multistep`` consistency sampling, or any diffusion sampler on the score
        implied by the x0 prediction."""
        method_, knobs = self.sampler_settings(method, steps, opts)
        if method_ not in ("onestep", "multistep") or score_fn is not None:
            return super().sample(
                n,
                method=method,
                steps=steps,
                generator=generator,
                y=y,
                score_fn=score_fn,
                **opts,
            )
        decl = sampler_registry.declared("diffusion", method_)
        count = int(sampler_registry.nfe(decl, knobs.get("steps"), knobs))  # one call a step
        x = consistency_sample(
            self.f_theta,
            (n, *self.data_shape),
            self.sampling_sigmas(count),
            sigma_min=self.sigma_min,
            generator=generator,
            device=self.like.device,
            dtype=self.like.dtype,
        )
        self.last_nfe = count
        return x

    def loss_text(self) -> list[str]:
        sigmas = (
            f"sigma_n Karras levels, N = {self.N}, [{self.sigma_min:.3g}, {self.sigma_max:.3g}]"
        )
        f = f"f(y, sigma) = c_skip y + c_out {self.f_name}(c_in y, ln(sigma)/4)"
        if self.start is not None:
            f = (
                f"f(y, sigma) = c_skip y + (sigma - sigma_min)/sigma (D(y, sigma) - "
                f"c_skip_edm y), D = x0 of predict {self.start.kind} = {self.f_name}(x_t, t) at "
                f"t(sigma), {self.f_name} initialised from the teacher"
            )
        if self.teacher_name is not None:
            step = f"y_hat = one {self.solver} step of teacher {self.teacher_name}'s PF-ODE"
            return [
                f"consistency distillation: d_{self.metric}(f(x0 + sigma_(n+1) z, sigma_(n+1)),"
                f" f_ema(y_hat, sigma_n)), {step}",
                f"  {f}; {sigmas} (Song et al. 2023)",
            ]
        return [
            f"consistency training: d_{self.metric}(f(x0 + sigma_(n+1) z, sigma_(n+1)), "
            f"f_ema(x0 + sigma_n z, sigma_n))",
            f"  {f}; {sigmas} (Song et al. 2023)",
        ]
