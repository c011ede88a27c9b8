"""The diffusion family's compiled model: a forward process, a network that predicts eps, x0, v
or the score of the noised data, the denoising score-matching loss derived from the process's
kernel, every sampler of :mod:`gendsl.sampling`, and the exact PF-ODE likelihood.

A spec's ``sde dx = F dt + G dw`` becomes the process the symbolic core recognises (VP, VE,
sub-VP, or an :class:`~gendsl.processes.AffineSDE` from the kernel's callables); a ``chain x[k] ~
Normal(sqrt(1 - beta[k]) x[k-1], sqrt(beta[k]))`` becomes a :class:`~gendsl.processes.
DiscreteChain` of the evaluated betas.  Every parameterisation is an affine function of the
score at fixed (x_t, t) (see :mod:`gendsl.objectives.dsm`), so one hook, :meth:`DiffusionModel.
net_output`, gives the network's native prediction and everything else is derived from it.

Preconditioning (Karras et al. 2022, "Elucidating the Design Space of Diffusion-Based Generative
Models", Sec. 5 and Table 1), for every affine process: the network F sees c_in(t) x_t, whose
variance is 1 at every t for data of standard deviation σ_data, and its output is scaled by
c_out(t), the standard deviation of the regression target, so F's own target has unit variance
too: pred = c_out(t) F(c_in(t) x_t, t).  For the VP SDE and DDPM chain with σ_data = 1 both are
(nearly) 1; for the VE SDE they undo the growth of x_t to σ_max and of the score to 1/σ_min.
The time input stays ``t``: for the geometric VE schedule t = ln(σ/σ_min) / ln(σ_max/σ_min) is
already an affine function of Karras's c_noise = ¼ ln σ.

Guidance, ControlNet and consistency models are subclasses that override hooks
(:mod:`gendsl.lower.diffusion_guidance`, :mod:`gendsl.lower.diffusion_consistency`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn

from gendsl import ir, sampler_registry
from gendsl.data import IMAGE_LEVELS
from gendsl.errors import UsageError
from gendsl.ir import CheckedModel, Opt
from gendsl.lower.base import Model
from gendsl.metrics import pf_ode
from gendsl.objectives.divergence import default_trace
from gendsl.objectives.dsm import (
    ddpm_simple_loss,
    dsm_loss,
    score_from_prediction,
    weighted_dsm,
)
from gendsl.processes import (
    VESDE,
    VPSDE,
    DiscreteChain,
    Process,
    ScoreFn,
    SubVPSDE,
    expand_like,
)
from gendsl.processes.edm import c_in
from gendsl.protocol import Batch, Capabilities
from gendsl.sampling import sample as run_sampler
from gendsl.sampling.common import clipped_score

__all__ = [
    "SIGMA_DATA",
    "Conditions",
    "DiffusionModel",
    "build_process",
    "c_out",
    "describe_process",
    "score_in_dtype",
    "sub_state",
    "ve_t_min",
]

#: Condition tensors by variable name (a missing label means "no label").
Conditions = dict[str, Tensor]

#: σ_data of the network preconditioning: the standard deviation of standardised data.
SIGMA_DATA = 1.0


# ------------------------------------------------------------------------------ preconditioning


def c_out(predict: str, a_t: Tensor, s_t: Tensor, sigma_data: float) -> Tensor:
    """c_out(t), the standard deviation of the regression target of ``predict`` for x0 of
    variance σ_data² (independent of ε): ε → 1; x0 → σ_data; v = a_t ε - s_t x0 →
    √(a_t² + s_t² σ_data²) (Salimans & Ho 2022); the kernel score -ε/s_t → 1/s_t, the output
    scaling of the NCSN++ score networks (Song et al. 2021, appendix H) and of Karras et al.
    2022 (Table 1, where F's target has unit variance)."""
    if predict == "eps":
        return torch.ones_like(s_t)
    if predict == "x0":
        return torch.full_like(s_t, sigma_data)
    if predict == "v":
        return torch.sqrt(a_t**2 + s_t**2 * sigma_data**2)
    return 1.0 / s_t


def ve_t_min(sigma_min: float, sigma_max: float) -> float:
    """The time at which the VE kernel's standard deviation s(t) = σ_min √((σ_max/σ_min)^(2t) - 1)
    equals σ_min: t = ln 2 / (2 ln(σ_max/σ_min)).

    Song et al. 2021 perturb with σ(t) = σ_min (σ_max/σ_min)^t, i.e. σ_min at their t_min
    (ε = 1e-5); this is the same noise level in the exact kernel started at t = 0.  Smaller
    t_min only adds noise levels below σ_min that the model was not designed to resolve and
    make the probability-flow ODE stiff (s(1e-5) ≈ 1.2e-4 for σ_min = 0.01, σ_max = 10).
    """
    return math.log(2.0) / (2.0 * math.log(sigma_max / sigma_min))


# ------------------------------------------------------------------------------ the process


def build_process(checked: CheckedModel) -> tuple[Process, Any]:
    """The forward process of the model's ``sde`` or ``chain``, and the closed forms of an sde's
    kernel (:class:`~gendsl.symbolic.closed_forms.SDEForms`; ``None`` for a chain).  On a warm
    cache neither needs sympy."""
    proc = checked.process
    if isinstance(proc, ir.SDE):
        from gendsl.symbolic import sde_forms, to_process

        forms = sde_forms(proc, checked.lets)
        t_min = ve_t_min(**forms.params) if forms.kind == "ve" else None
        return to_process(forms, t_min=t_min), forms
    if isinstance(proc, ir.Chain):
        from gendsl.symbolic import chain_betas

        return DiscreteChain(torch.as_tensor(chain_betas(proc, checked.lets))), None
    raise UsageError(f"model {checked.name} declares no sde or chain")


def describe_process(process: Process, kernel: Any) -> list[str]:
    """Lines naming the process, its kernel x_t = a(t) x0 + s(t) eps, T and t_min."""
    if isinstance(process, DiscreteChain):
        b = process.betas
        head = (
            f"DDPM chain, K = {process.K}, beta from {float(b[0]):.4g} to {float(b[-1]):.4g}; "
            f"a(t) = sqrt(abar_k), s(t) = sqrt(1 - abar_k), abar_k = prod_(i<=k) (1 - beta_i), "
            f"t = k/K"
        )
    else:
        names = {VPSDE: "VP SDE", SubVPSDE: "sub-VP SDE", VESDE: "VE SDE"}
        head = f"{names.get(type(process), 'affine SDE')} {process!r}"
        if kernel is not None:
            text = kernel.texts
            head += f"; dx = ({text['f']}) x dt + ({text['g']}) dw"
            if text["a"] is not None and text["s2"] is not None:
                head += f"; a(t) = {text['a']}, s(t)^2 = {text['s2']}"
            else:
                head += "; a(t), s(t) integrated numerically"
    return [f"process: {head}", f"  T = {process.T:g}, t_min = {process.t_min:g}"]


_PROCESS_KINDS = {VPSDE: "vp", SubVPSDE: "subvp", VESDE: "ve", DiscreteChain: "chain"}


def process_kind(process: Process) -> str:
    """The sampler registry's name of a diffusion process (a key of
    :data:`gendsl.sampler_registry.PROCESSES`)."""
    return _PROCESS_KINDS.get(type(process), "affine")


# ------------------------------------------------------------------------------ helpers


def sub_state(state: Mapping[str, Tensor], prefix: str) -> dict[str, Tensor]:
    """The entries of ``state`` under ``prefix`` (``nets.eps.``), with the prefix removed."""
    out = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
    if not out:
        raise UsageError(f"the trained weights have no entries under {prefix!r}")
    return out


def score_in_dtype(score_fn: ScoreFn, dtype: torch.dtype) -> ScoreFn:
    """``score_fn`` evaluated in ``dtype`` (the network's) on inputs of any floating dtype, its
    result returned in the input's dtype; lets an ODE carry a float64 state through a float32
    network."""

    def wrapped(x: Tensor, t: Tensor) -> Tensor:
        return score_fn(x.to(dtype), t.to(dtype)).to(x.dtype)

    return wrapped


def _option(opt: Opt | None, key: str, default: Any) -> Any:
    return default if opt is None else opt.kwargs.get(key, default)


def _weight(value: Any) -> tuple[str, float]:
    """The dsm ``weight`` option as (name, gamma): ``none`` means the network's own squared
    error (L_simple for eps)."""
    if isinstance(value, Opt):
        return value.name, float(value.kwargs.get("gamma", value.args[0] if value.args else 5.0))
    name = str(value)
    return ("simple" if name == "none" else name), 5.0


# ------------------------------------------------------------------------------ the model


class DiffusionModel(Model):
    """A compiled diffusion model (``sde`` or ``chain`` with ``predict``).

    Hooks the variants override: :meth:`net_output` (the network's native prediction),
    :meth:`training_conditions` (label dropout), :meth:`per_sample_loss`,
    :meth:`sampling_score_fn` (guidance).
    """

    family = "diffusion"
    capabilities = Capabilities(
        likelihood=True, dequantized_likelihood=True, steps=True, diagnostics=True
    )

    def __init__(self, checked: CheckedModel, bindings: Mapping[str, int]):
        super().__init__(checked, bindings)
        data = self.sole_data_variable()
        self.data_name = data.name
        self.data_kind = data.type.kind
        self.data_shape = self.shape_of(self.data_name)
        self.process, self.kernel = build_process(checked)
        self.noised_name = next(
            (v.name for v in checked.variables.values() if v.role == "noised"),
            f"{self.data_name}_t",
        )
        self.predict_kind = checked.predict.kind
        self.nets = nn.ModuleDict()
        self.predict_call = self._predict_call()
        self.loss_opt = checked.loss
        self.guidance_scale: float | None = None
        self.last_nfe: int | None = None
        self.sigma_data = SIGMA_DATA

    # -------------------------------------------------------------- networks and predictions

    def _predict_call(self) -> ir.Call | None:
        """Build the ``predict`` network (override for other forms of ``predict``)."""
        call = self.checked.predict.value
        self.nets[call.func] = self.build_net(self.checked.nets[call.func])
        return call

    def network_input(self, x_t: Tensor, t: Tensor, sigma_data: float | None = None) -> Tensor:
        """c_in(t) x_t, the noised data as every network sees it (see :func:`c_in`); x_t itself
        for a variance-preserving process (a_t² + s_t² = 1) with σ_data = 1, where c_in ≡ 1.
        ``sigma_data`` defaults to the model's."""
        sigma_data = self.sigma_data if sigma_data is None else sigma_data
        if sigma_data == 1.0 and isinstance(self.process, (DiscreteChain, VPSDE)):
            return x_t
        a_t, s_t = self.process.marginal(t)
        return expand_like(c_in(s_t, a_t=a_t, sigma_data=sigma_data), x_t) * x_t

    def output_scale(
        self, t: Tensor, like: Tensor, kind: str | None = None, sigma_data: float | None = None
    ) -> Tensor:
        """c_out(t) of the prediction ``kind`` (default: the declared ``predict``), shaped to
        broadcast against ``like``."""
        a_t, s_t = self.process.marginal(t)
        kind = self.predict_kind if kind is None else kind
        sigma_data = self.sigma_data if sigma_data is None else sigma_data
        return expand_like(c_out(kind, a_t, s_t, sigma_data), like)

    def call_net(
        self,
        call: ir.Call,
        x_t: Tensor,
        t: Tensor,
        cond: Conditions,
        net: nn.Module | None = None,
        *,
        kind: str | None = None,
        sigma_data: float | None = None,
        **extra: Tensor,
    ) -> Tensor:
        """Evaluate a network call written in the spec, ``eps(x_t, t, y)``: the noised variable
        is ``x_t``, ``t`` the time, a ``label`` condition the class input ``y``, any other
        condition an extra tensor input; ``net`` replaces the named network and ``extra`` are
        further keyword inputs (a ControlNet branch's ``control``).  The call is preconditioned:
        c_out(t) net(c_in(t) x_t, t, ...) (:func:`c_in`, :func:`c_out`; c_out ≡ 1 for eps is not
        multiplied), for the prediction ``kind`` and ``sigma_data`` (default: the model's own;
        another model's parameterisation when a consistency model reads its teacher's)."""
        net = self.nets[call.func] if net is None else net
        kind = self.predict_kind if kind is None else kind
        x_in = self.network_input(x_t, t, sigma_data)
        inputs, kw = [], dict(extra)
        for arg in call.args:
            role = arg.role if isinstance(arg, ir.Name) else None
            if role == "time":
                kw["t"] = t
            elif role == "condition":
                if arg.type.kind == "label":
                    kw["y"] = cond.get(arg.id)
                else:
                    inputs.append(cond[arg.id])
            else:
                inputs.append(x_in)
        out = net(*inputs, **kw)
        return out if kind == "eps" else self.output_scale(t, out, kind, sigma_data) * out

    def net_output(self, x_t: Tensor, t: Tensor, cond: Conditions) -> Tensor:
        """The network's prediction (eps, x0, v or score, as declared) at (x_t, t)."""
        return self.call_net(self.predict_call, x_t, t, cond)

    def score(self, x_t: Tensor, t: Tensor, cond: Conditions) -> Tensor:
        """ŝ(x_t, t) = ∇ log p_t(x_t) implied by :meth:`net_output` (Song et al. 2021)."""
        a_t, s_t = self.process.marginal(t)
        return score_from_prediction(
            self.predict_kind, self.net_output(x_t, t, cond), x_t, a_t, s_t
        )

    def sampling_score_fn(self, cond: Conditions, *, scale: float | None) -> ScoreFn:
        """The score function the samplers and the likelihood use (guided in subclasses)."""
        return lambda x, t: self.score(x, t, cond)

    # -------------------------------------------------------------- data and conditions

    def conditions(self, data: Mapping[str, Tensor]) -> Conditions:
        """The condition tensors present in ``data``."""
        return {v.name: data[v.name] for v in self.checked.condition_vars() if v.name in data}

    def training_conditions(self, data: Mapping[str, Tensor]) -> Conditions:
        """The conditions the network sees while training (classifier-free guidance drops
        labels here)."""
        return self.conditions(data)

    def given_conditions(self, n: int, y: Any) -> Conditions:
        """Conditions for ``n`` samples from the user's ``y``: a tensor or number for the only
        condition, or a mapping from condition names to tensors."""
        names = [v.name for v in self.checked.condition_vars()]
        if y is None:
            return {}
        if not names:
            raise UsageError(f"model {self.checked.name} has no condition, but y was given")
        items = dict(y) if isinstance(y, Mapping) else {names[0]: y}
        device = self.like.device
        out = {}
        for name, value in items.items():
            var = self.checked.variables[name]
            if var.type.kind == "label":
                value = torch.as_tensor(value, device=device).long()
                out[name] = value.expand(n) if value.ndim == 0 else value
            else:
                out[name] = torch.as_tensor(value, device=device, dtype=self.like.dtype)
        return out

    # -------------------------------------------------------------- loss

    def per_sample_loss(self, data: Mapping[str, Tensor]) -> Tensor:
        """The loss per data point: ``dsm`` (kernel-derived, weighted) or ``ddpm`` (L_simple)."""
        x0 = data[self.data_name]
        cond = self.training_conditions(data)

        def pred_fn(x_t: Tensor, t: Tensor) -> Tensor:
            return self.net_output(x_t, t, cond)

        if self.loss_opt.name == "ddpm":
            if not isinstance(self.process, DiscreteChain) or self.predict_kind != "eps":
                raise UsageError("loss ddpm needs a chain and 'predict eps = ...'")
            return ddpm_simple_loss(self.process, pred_fn, x0)
        weight, gamma = _weight(self.loss_opt.kwargs.get("weight", "none"))
        return dsm_loss(
            self.process,
            pred_fn,
            x0,
            predict=self.predict_kind,
            weight=weight,
            time=str(self.loss_opt.kwargs.get("time", "uniform")),
            gamma=gamma,
        )

    def loss(self, batch: Batch) -> Tensor:
        """The mean of :meth:`per_sample_loss` over the batch."""
        return self.per_sample_loss(self.as_data(batch)).mean()

    def diagnostics(self, batch: Batch) -> dict[str, float]:
        """The loss (the declared weighting, uniform time) in each quarter of [t_min, T]:
        ``loss_t1`` is the least noisy quarter."""
        data = self.as_data(batch)
        x0 = data[self.data_name]
        cond = self.training_conditions(data)
        weight = (
            "simple"
            if self.loss_opt.name != "dsm"
            else _weight(self.loss_opt.kwargs.get("weight", "none"))[0]
        )
        p, out = self.process, {}
        for q in range(4):
            u = (q + torch.rand(x0.shape[0], device=x0.device, dtype=x0.dtype)) / 4
            t = p.t_min + (p.T - p.t_min) * u
            eps = torch.randn_like(x0)
            with torch.no_grad():
                value = weighted_dsm(
                    p,
                    lambda x_t, t_: self.net_output(x_t, t_, cond),
                    x0,
                    t,
                    eps,
                    predict=self.predict_kind,
                    weight=weight,
                )
            out[f"loss_t{q + 1}"] = float(value.mean())
        return out

    # -------------------------------------------------------------- sampling

    def sampler_settings(
        self, method: str | None, steps: int | None, opts: Mapping[str, Any]
    ) -> tuple[str, dict[str, Any]]:
        """The method and knobs for :func:`gendsl.sampling.sample`: the ``sample with``
        declaration (its options apply only when ``method`` is it or ``None``), overridden by
        the caller's ``steps`` and ``opts``."""
        declared = self.checked.sampler
        default = "ancestral" if declared is None else declared.name
        method = method or default
        self.check_sampler(method)
        knobs: dict[str, Any] = {}
        if declared is not None and declared.name == method:
            knobs.update(declared.kwargs)
        knobs.update(opts)
        if steps is not None:
            knobs["steps"] = steps
        # unset options (steps = None, schedule = auto) leave the choice to the sampler's
        # measured defaults (gendsl.sampler_registry, read by gendsl.sampling.sample)
        knobs = {k: v for k, v in knobs.items() if v is not None and v != "auto"}
        schedule = knobs.get("schedule")
        if isinstance(schedule, Opt):
            knobs["schedule"] = schedule.name
            knobs.update({k: float(v) for k, v in schedule.kwargs.items()})
        if "multistep" in knobs:
            knobs["multistep"] = bool(knobs["multistep"])
        if method == "ancestral" and isinstance(self.process, DiscreteChain):
            knobs.setdefault("steps", self.process.K)
        return method, knobs

    def clips(self, clip: bool | None) -> bool:
        """Whether sampling clips the denoised estimate to [0, 1] (:func:`clipped_score`): the
        sampler's ``clip`` option, by default on for ``image`` data."""
        if clip is None:
            return self.data_kind == "image"
        if clip and self.data_kind != "image":
            raise UsageError(
                f"clip = true needs image data (values in [0, 1]); {self.data_name} is "
                f"{self.data_kind}"
            )
        return bool(clip)

    def sampler_kinds(self) -> tuple[str, ...]:
        """The processes (registry names) whose samplers run on this model."""
        return (process_kind(self.process),)

    def check_sampler(self, method: str) -> None:
        """Refuse a sampler the registry does not declare for this model's process."""
        kinds = self.sampler_kinds()
        decl = sampler_registry.SAMPLERS.get(("diffusion", method))
        if decl is not None and set(decl.processes) & set(kinds):
            return
        here = [
            name
            for name, d in sampler_registry.of_family("diffusion").items()
            if set(d.processes) & set(kinds)
        ]
        words = sampler_registry.PROCESSES
        head = (
            f"unknown sampler {method!r}"
            if decl is None
            else f"sampler {method!r} runs on: {', '.join(words[p] for p in decl.processes)}"
        )
        raise UsageError(
            f"{head}; the samplers of this model ({words[kinds[-1]]}) are {', '.join(here)}"
        )

    def default_nfe(self) -> int | None:
        """Network evaluations of the default sampler, as the sampler registry counts them
        (:func:`gendsl.sampler_registry.nfe`); ``None`` where the count is not fixed."""
        method, knobs = self.sampler_settings(None, None, {})
        decl = sampler_registry.SAMPLERS.get(("diffusion", method))
        return None if decl is None else sampler_registry.nfe(decl, knobs.get("steps"), knobs)

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
        """``n`` samples of the data variable from the declared sampler (or ``method``).

        ``y`` is the condition (see :meth:`given_conditions`); ``scale`` overrides the
        guidance scale; ``score_fn(x, t)`` replaces the network (sampling the declared process
        with any score, e.g. an exact one).  The network evaluations spent are in
        :attr:`last_nfe`.
        """
        scale = opts.pop("scale", self.guidance_scale)
        method, knobs = self.sampler_settings(method, steps, opts)
        if score_fn is None:
            score_fn = self.sampling_score_fn(self.given_conditions(n, y), scale=scale)
        if self.clips(knobs.pop("clip", None)):
            score_fn = clipped_score(self.process, score_fn)
        like = self.like
        result = run_sampler(
            self.process,
            score_fn,
            (n, *self.data_shape),
            method=method,
            generator=generator,
            device=like.device,
            dtype=like.dtype,
            **knobs,
        )
        self.last_nfe = result.nfe
        return result.x

    # -------------------------------------------------------------- likelihood

    def log_prob(
        self,
        x: Batch,
        *,
        y: Any = None,
        trace: str | None = None,
        dequantize: int | None = None,
        method: str = "dopri5",
        rtol: float = 1e-5,
        atol: float = 1e-5,
        ode_dtype: torch.dtype | None = torch.float64,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """log p(x) in nats per data point by the probability-flow ODE (Song et al. 2021,
        eq. 40): the exact divergence or Hutchinson's estimate (``trace``; by default as
        :func:`~gendsl.objectives.divergence.default_trace` picks for D).

        The ODE state (x, time and the log-density accumulator) is carried in ``ode_dtype``
        (float64 by default; ``None`` keeps the model's dtype) while the network runs in its
        own dtype: near t_min the PF-ODE is stiff (the score grows like 1/s(t)) and in float32
        dopri5 can shrink its step below the resolution of t ("underflow in dt").

        ``dequantize = L`` treats x in [0, 1] as L-level quantised: the model density is
        evaluated at uniformly dequantised y = (k + u)/L and the result, E_u log p(y) - D log L,
        is a lower bound on the discrete log-probability (Theis et al. 2016).  ``image`` data
        are dequantised with L = 256 unless ``dequantize = 0``.
        """
        data = self.as_data(x)
        x0 = data[self.data_name]
        cond = self.conditions(data)
        cond.update(self.given_conditions(x0.shape[0], y))
        D = x0[0].numel()
        trace = trace or default_trace(D)
        levels = IMAGE_LEVELS if dequantize is None and self.data_kind == "image" else dequantize
        if levels:
            x0 = pf_ode.dequantize(x0, levels=levels, generator=generator)
        score_fn = self.sampling_score_fn(cond, scale=self.guidance_scale)
        if ode_dtype is not None and ode_dtype != x0.dtype:
            score_fn = score_in_dtype(score_fn, x0.dtype)
            x0 = x0.to(ode_dtype)
        lp = pf_ode.pf_ode_log_prob(
            self.process,
            score_fn,
            x0,
            trace=trace,
            method=method,
            rtol=rtol,
            atol=atol,
            generator=generator,
        )
        lp = lp.to(data[self.data_name].dtype)
        return pf_ode.dequantized_log_prob(lp, D, levels=levels) if levels else lp

    def bits_per_dim(self, x: Batch, **kwargs: Any) -> Tensor:
        """-log p(x) / (D ln 2) per data point, with :meth:`log_prob`'s options."""
        return pf_ode.bits_per_dim(self.log_prob(x, **kwargs), math.prod(self.data_shape))

    # -------------------------------------------------------------- description

    def loss_text(self) -> list[str]:
        """The derived loss, written out."""
        target = {
            "eps": "eps",
            "x0": "x0",
            "v": "a_t eps - s_t x0",
            "score": "-eps / s_t",
        }[self.predict_kind]
        x_t = f"{self.noised_name} = a(t) {self.data_name} + s(t) eps, eps ~ N(0, I)"
        if self.loss_opt.name == "ddpm":
            return [
                f"L_simple = E_k,eps || eps - {self.predict_call.func}({self.noised_name}, k/K) "
                f"||^2, k ~ U{{1..K}}, {x_t} (Ho et al. 2020, eq. 14)"
            ]
        weight, gamma = _weight(self.loss_opt.kwargs.get("weight", "none"))
        lam = {
            "simple": "1 (the network's own squared error)",
            "likelihood": "g(t)^2 / c(t)",
            "sigma2": "s(t)^2 / c(t)",
            "min_snr": f"s(t)^2 min(SNR, {gamma:g}) / SNR / c(t)",
        }[weight]
        time = self.loss_opt.kwargs.get("time", "uniform")
        return [
            f"dsm = E_t,{self.data_name},eps w(t) || pred({self.noised_name}, t) - {target} ||^2"
            f", {x_t}",
            f"  w(t) = {lam}; t ~ {time} on [t_min, T] (Vincent 2011; Song et al. 2021)",
        ]

    def objective_terms(self) -> list[str]:
        return self.loss_text()

    def describe(self) -> str:
        """Family, process, networks, the derived loss, and the default sampler with its NFE."""
        head, *rest = super().describe().split("\n")
        lines = [head, *describe_process(self.process, self.kernel), *rest]
        lines.append(f"predict: {self.predict_kind}")
        method, knobs = self.sampler_settings(None, None, {})
        nfe = sampler_registry.nfe_text(
            sampler_registry.declared("diffusion", method), knobs.get("steps"), knobs
        )
        shown = ", ".join(f"{k} = {v}" for k, v in knobs.items())
        lines.append(f"sampler: {method}({shown}), NFE = {nfe}")
        return "\n".join(lines)
