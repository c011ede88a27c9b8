"""The latent-variable family: VAEs, β-VAEs, IWAEs, hierarchical VAEs, mixtures with enumerated
discrete latents (lowered to Pyro), and VQ-VAEs (plain torch).

The model and the guide run in the program interpreter (:mod:`gendsl.lower.interpret`); each
use is a stack of handlers (:mod:`gendsl.lower.handlers`) that decides the sites' values:

* :meth:`LatentModel.pyro_model` / :meth:`LatentModel.pyro_guide` run under
  ``[PyroSample, Scale(β, latents), Enumerate, Condition(data)]`` inside ``pyro.plate("data",
  B)``: ``pyro.sample`` sites, the programs Pyro's ELBOs (``Trace_ELBO``,
  ``TraceMeanField_ELBO``, ``TraceEnum_ELBO``) consume;
* the training loss traces the guide (``[Trace, Condition(data)]``), then the model replaying
  the guide's values (``[Trace, Replay, Condition(data)]``) and computes the bound with
  :mod:`gendsl.objectives.elbo` — the same numbers as Pyro's ``TraceMeanField_ELBO``/
  ``Trace_ELBO`` without Pyro's tracing and, for Normal and Bernoulli sites, without building
  distribution objects (the tests compare them); models with enumerated sites use Pyro's
  ``TraceEnum_ELBO``;
* sampling draws every site from its distribution, ancestrally (``[Draw(generator)]``).

``log_prob`` is not available in this family; ``elbo(x)`` is the evidence lower bound and
``iwae(x, k)`` the importance-weighted bound per data point.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pyro
import torch
from pyro.infer import Trace_ELBO, TraceEnum_ELBO, TraceMeanField_ELBO
from pyro.infer.elbo import ELBO
from torch import Tensor, nn

from gendsl import ir
from gendsl.errors import UsageError
from gendsl.ir import CheckedModel, NetSpec, Opt
from gendsl.lower.base import Model, resolve_shape
from gendsl.lower.expr import Scope, compile_expr
from gendsl.lower.handlers import (
    Condition,
    Draw,
    Enumerate,
    Handler,
    Mean,
    PyroSample,
    Replay,
    Scale,
    Trace,
)
from gendsl.lower.interpret import Program
from gendsl.lower.residual import residual_guide
from gendsl.lower.vq_levels import (
    CodeLevel,
    LevelTerms,
    level_diagnostics,
    level_terms,
    quantizing,
)
from gendsl.objectives.code_prior import code_prior
from gendsl.objectives.eager import eager
from gendsl.objectives.elbo import (
    ElboTerms,
    SiteRecord,
    active_units,
    annealed_beta,
    elbo_terms,
    free_bits_kl,
    iwae_bound,
    log_weights,
)
from gendsl.objectives.vq import VectorQuantizer
from gendsl.protocol import Batch, Capabilities

__all__ = ["LatentModel", "VQModel", "build_latent"]


def _opt_kwargs(opt: Opt | str | None, positional: Sequence[str]) -> dict[str, Any]:
    """The arguments of an option call as keywords (positional ones named by ``positional``)."""
    if not isinstance(opt, Opt):
        return {}
    return {**dict(zip(positional, opt.args, strict=False)), **opt.kwargs}


class _NetCall:
    """A network as the spec calls it: positional tensors that may carry extra leading
    (particle or enumeration) dimensions, a time ``t``, a label condition ``y``.

    ``roles`` says per argument: ``tensor``, ``t`` or ``y`` (a label).  Leading dimensions of
    all tensor arguments are broadcast, flattened into one batch for the network, and restored
    on the output.
    """

    def __init__(self, net: nn.Module, roles: list[str], shapes: list[tuple[int, ...]]):
        self.net, self.roles, self.shapes = net, roles, shapes
        self.plain_dims = [len(s) + 1 for s in shapes] if set(roles) <= {"tensor"} else None

    def _is_plain(self, args: tuple[Any, ...]) -> bool:
        """Whether ``args`` are tensors with one common batch axis (the network takes them as
        they are)."""
        dims = self.plain_dims
        if dims is None or len(args) != len(dims) or not args:
            return False
        n = None
        for a, d in zip(args, dims, strict=True):
            if not isinstance(a, Tensor) or a.dim() != d or (n is not None and a.shape[0] != n):
                return False
            n = a.shape[0]
        return True

    def __call__(self, *args: Any) -> Tensor:
        net = self.net
        if self._is_plain(args):
            return net(*args)
        tensors: list[Tensor] = []
        t = y = None
        for role, a in zip(self.roles, args, strict=True):
            if role == "t":
                t = a
            elif role == "y":
                y = a
            else:
                if not isinstance(a, Tensor):
                    a = torch.as_tensor(a, device=next(net.parameters()).device)
                tensors.append(a)
        if not tensors and y is None:
            return net(t=t)
        batches = [x.shape[: x.dim() - len(s)] for x, s in zip(tensors, self.shapes, strict=True)]
        if y is not None:
            batches.append(y.shape)
        batch = batches[0]
        if any(b != batch for b in batches):
            batch = torch.broadcast_shapes(*batches)
        flat = [
            x.expand(*batch, *s).reshape(-1, *s) for x, s in zip(tensors, self.shapes, strict=True)
        ]
        if y is not None:
            y = y.expand(batch).reshape(-1)
        out = net(*flat, t=t, y=y)
        return out.reshape(*batch, *out.shape[1:])


class LatentModel(Model):
    """A compiled latent-variable model trained by ``elbo`` or ``iwae`` (see the module
    docstring).  ``log_prob`` is not available; ``elbo(x)`` and ``iwae(x, k)`` are bounds."""

    family = "latent"
    capabilities = Capabilities(elbo=True, diagnostics=True)

    def __init__(self, checked: CheckedModel, bindings: Mapping[str, int]):
        super().__init__(checked, bindings)
        self.calls: dict[str, _NetCall] = {}
        nets = {name: self._lower_net(spec) for name, spec in checked.nets.items()}
        self.nets = nn.ModuleDict(nets)
        self.data_names = [v.name for v in checked.data_vars()]
        self._configure_loss(checked.loss)
        self.program = Program(self, values=self.calls)
        if self.residual:
            self.program.guide = residual_guide(self.program.guide, self.program.sites)
        guided = {s.name for s in checked.guide} | set(self.enumerate)
        for site in checked.sites:
            role = checked.variables[site.name].role
            if role == "latent" and site.name not in guided:
                raise UsageError(
                    f"latent {site.name} has no guide site and is not enumerated; add "
                    f"'{site.name} | ... ~ ...' to the guide or loss elbo(enumerate = "
                    f"[{site.name}])"
                )

    # -------------------------------------------------------------------- lowering

    def _lower_net(self, spec: NetSpec) -> nn.Module:
        """Build ``spec``'s network and the callable the interpreter uses for it: the time
        ``t`` and label variables (conditions or latents) enter as ``t=``/``y=``."""
        roles = []
        for name in spec.inputs:
            var = self.checked.variables.get(name)
            if name == "t" and var is None:
                roles.append("t")
            elif var is not None and var.type.kind == "label":
                roles.append("y")
            else:
                roles.append("tensor")
        shapes = [resolve_shape(s, self.sizes) for s in spec.in_shapes]
        net = self.build_net(spec)
        self.calls[spec.name] = _NetCall(net, roles, shapes)
        return net

    def _configure_loss(self, loss: Opt) -> None:
        kw = loss.kwargs
        self.objective = loss.name
        if loss.name not in ("elbo", "iwae"):
            raise UsageError(f"loss {loss.name} is not a latent-variable objective")
        self.beta = float(kw.get("beta", 1.0))
        anneal = kw.get("anneal")
        # the checker fills the default ``anneal = none``; only a schedule call anneals
        self.anneal = (
            _opt_kwargs(anneal, ("start", "end", "steps")) if isinstance(anneal, Opt) else None
        )
        self.free_bits = float(kw.get("free_bits", 0.0))
        self.enumerate = [str(e) for e in kw.get("enumerate", [])]
        kl = kw.get("kl", "analytic")
        if kl not in ("analytic", "mc"):
            raise UsageError(f"kl must be analytic or mc, got {kl!r}")
        self.analytic = kl == "analytic"
        self.k = int(kw.get("k", 16)) if loss.name == "iwae" else 1
        self.residual = bool(kw.get("residual", False))
        if self.enumerate and (self.objective == "iwae" or self.free_bits):
            raise UsageError("enumerate works with loss elbo without free_bits")
        if self.free_bits and not self.analytic:
            raise UsageError("free_bits needs the analytic KL; remove kl = mc")

    # -------------------------------------------------------------------- the interpreter

    def run(
        self,
        data: Mapping[str, Tensor],
        handlers: Sequence[Handler],
        batch: tuple[int, ...],
        *,
        guide: bool = False,
    ) -> Scope:
        """Run the model's (or the guide's) sites under ``handlers`` with ``data`` in scope;
        the scope afterwards."""
        return self.program.run(handlers, batch=batch, values=data, guide=guide)

    def _batch_size(self, data: Mapping[str, Tensor]) -> int:
        return next(iter(data.values())).shape[0]

    # -------------------------------------------------------------------- Pyro programs

    def _pyro_handlers(self, data: Mapping[str, Tensor]) -> list[Handler]:
        """``pyro.sample`` sites: data observed, enumerated sites marked, the other (latent)
        sites' log-densities scaled by β."""
        enumerated = set(self.enumerate)
        names = {p.name for p in (*self.program.sites, *self.program.guide)}
        latents = names - enumerated - set(data)
        return [
            PyroSample(),
            Scale(self.current_beta(), latents),
            Enumerate(enumerated),
            Condition(data),
        ]

    def _pyro_run(self, data: Mapping[str, Tensor], *, guide: bool) -> None:
        n = self._batch_size(data)
        with pyro.plate("data", n, dim=-1):
            self.run(data, self._pyro_handlers(data), (n,), guide=guide)

    def pyro_model(self, data: Mapping[str, Tensor]) -> None:
        """The generative program as a Pyro model over one batch (latent sites scaled by β)."""
        self._pyro_run(data, guide=False)

    def pyro_guide(self, data: Mapping[str, Tensor]) -> None:
        """The ``guide { }`` as a Pyro guide over one batch (sites scaled by β)."""
        self._pyro_run(data, guide=True)

    def pyro_elbo(self, *, num_particles: int = 1) -> ELBO:
        """The Pyro ELBO object matching the spec's loss: ``TraceEnum_ELBO`` with enumerated
        sites, ``TraceMeanField_ELBO`` with the analytic KL, else ``Trace_ELBO``."""
        if self.enumerate:
            return TraceEnum_ELBO(max_plate_nesting=1, num_particles=num_particles)
        cls = TraceMeanField_ELBO if self.analytic else Trace_ELBO
        return cls(num_particles=num_particles)

    # -------------------------------------------------------------------- objectives

    def current_beta(self) -> float:
        """β at the current training step (the ``anneal`` schedule applied to ``beta``)."""
        if self.anneal is None:
            return self.beta
        a = self.anneal
        return annealed_beta(
            int(self.step),
            beta=self.beta,
            start=float(a.get("start", 0.0)),
            end=float(a.get("end", 1.0)),
            steps=int(a.get("steps", 1)),
        )

    def trace(
        self, data: Mapping[str, Tensor], *, particles: int = 1
    ) -> tuple[dict[str, SiteRecord], dict[str, SiteRecord]]:
        """Run the guide then the model (replaying the guide) on ``particles`` copies of the
        batch stacked along the batch axis; the model's and the guide's site records."""
        if particles > 1:
            data = {k: v.repeat(particles, *([1] * (v.dim() - 1))) for k, v in data.items()}
        batch = (self._batch_size(data),)
        guide = Trace()
        self.run(data, [guide, Condition(data)], batch, guide=True)
        model = Trace()
        self.run(data, [model, Replay(guide.values()), Condition(data)], batch)
        return model.records, guide.records

    def _terms(self, data: Mapping[str, Tensor], *, per_dim: bool = False) -> ElboTerms:
        return elbo_terms(*self.trace(data), analytic=self.analytic, per_dim=per_dim)

    def loss(self, batch: Batch) -> Tensor:
        """−(bound) per data point, averaged over the batch.

        ``elbo``: −E_q[log p(x|z)] + β(step)·KL, the KL with free bits when ``free_bits > 0``;
        ``iwae``: −L_k; with ``enumerate``: Pyro's ``TraceEnum_ELBO`` (β scales the guided
        latents' sites).  Training-mode calls with gradients advance the step counter.
        """
        data = self.as_data(batch)
        n = self._batch_size(data)
        beta = self.current_beta()
        if self.enumerate:
            value = self._enumerated_loss(data) / n
        elif self.objective == "iwae":
            log_w = log_weights(*self.trace(data, particles=self.k)).reshape(self.k, n)
            value = -iwae_bound(log_w).mean()
        else:
            terms = self._terms(data, per_dim=self.free_bits > 0)
            if self.free_bits > 0:
                kl = sum(free_bits_kl(d, self.free_bits) for d in terms.kl_dims.values())
                value = beta * kl - terms.recon.mean()
            else:
                kl = terms.kl_total
                value = ((kl if beta == 1.0 else beta * kl) - terms.recon).mean()
        if self.training and torch.is_grad_enabled():
            self.step.add_(1)  # in place: no Module.__setattr__ per step
        return value

    @eager  # Pyro's TraceEnum_ELBO (opt_einsum) runs eagerly under compile
    def _enumerated_loss(self, data: Mapping[str, Tensor]) -> Tensor:
        """−ELBO of the batch summed over points, enumerated sites summed out exactly
        (Pyro's ``TraceEnum_ELBO``): differentiable when gradients are on, else Pyro's
        gradient-free estimate (``differentiable_loss`` refuses to run without a graph)."""
        elbo = self.pyro_elbo()
        if torch.is_grad_enabled():
            return elbo.differentiable_loss(self.pyro_model, self.pyro_guide, data)
        return self.like.new_tensor(elbo.loss(self.pyro_model, self.pyro_guide, data))

    def elbo(self, x: Batch) -> Tensor:
        """The ELBO per data point (β = 1, no free bits; exact sum over enumerated sites)."""
        data = self.as_data(x)
        if not self.enumerate:
            return self._terms(data).elbo
        enum = TraceEnum_ELBO(max_plate_nesting=1)
        n = self._batch_size(data)
        grad = torch.is_grad_enabled()
        beta, self.beta, anneal, self.anneal = self.beta, 1.0, self.anneal, None
        try:
            # Pyro's differentiable_loss refuses a loss without a graph, so it is built even
            # under no_grad (diagnostics) and detached afterwards
            with torch.enable_grad():
                points = [
                    -enum.differentiable_loss(
                        self.pyro_model,
                        self.pyro_guide,
                        {k: v[i : i + 1] for k, v in data.items()},
                    )
                    for i in range(n)
                ]
        finally:
            self.beta, self.anneal = beta, anneal
        value = torch.stack(points)
        return value if grad else value.detach()

    def iwae(self, x: Batch, k: int = 16) -> Tensor:
        """The importance-weighted bound L_k per data point (Burda et al. 2016)."""
        if self.enumerate:
            raise UsageError("iwae does not support enumerated sites")
        data = self.as_data(x)
        n = self._batch_size(data)
        return iwae_bound(log_weights(*self.trace(data, particles=k)).reshape(k, n))

    @torch.no_grad()
    def diagnostics(self, batch: Batch) -> dict[str, float]:
        """ELBO, reconstruction term, KL per latent and per dimension (analytic where torch has
        a closed form), active units per latent, the current β."""
        data = self.as_data(batch)
        out = {"beta": self.current_beta()}
        if self.enumerate:
            out["elbo"] = float(self.elbo(data).mean())
            return out
        model, guide = self.trace(data)
        terms = elbo_terms(model, guide, analytic=True)
        out.update(elbo=float(terms.elbo.mean()), recon=float(terms.recon.mean()))
        out["kl"] = float(terms.kl_total.mean())
        for name, kl in terms.kl.items():
            out[f"kl/{name}"] = float(kl.mean())
            dims = terms.kl_dims[name]
            if dims is not None:
                for i, v in enumerate(dims.reshape(dims.shape[0], -1).mean(0).tolist()):
                    out[f"kl/{name}[{i}]"] = v
            try:
                means = guide[name].fn.mean
            except NotImplementedError:
                continue
            out[f"active_units/{name}"] = float(active_units(means))
        return out

    # -------------------------------------------------------------------- sampling

    def _sample_values(
        self, n: int, conditions: Mapping[str, Any], generator: torch.Generator | None
    ) -> dict[str, Any]:
        """The values sampling starts from: the given conditions."""
        data = {}
        for v in self.checked.condition_vars():
            if v.name not in conditions:
                raise UsageError(f"sampling a conditional model needs {v.name}=... (a tensor)")
            value = torch.as_tensor(conditions[v.name], device=self.like.device)
            data[v.name] = value.expand(n, *value.shape[1:]) if value.dim() else value.expand(n)
        return data

    @torch.no_grad()
    def sample(
        self,
        n: int,
        *,
        method: str | None = None,
        steps: int | None = None,
        generator: torch.Generator | None = None,
        mean: bool = False,
        y: Any = None,
        **conditions: Any,
    ) -> Tensor:
        """``n`` ancestral samples: latents from the prior, then the data site.

        ``mean=True`` returns the observation distribution's mean instead of a draw of it (for
        a Bernoulli, the probabilities).  Conditions are passed by name (``label=labels``) or,
        as for the other families, as ``y``: the value of the only condition or a mapping from
        condition names to values.
        """
        known = [v.name for v in self.checked.condition_vars()]
        if isinstance(y, Mapping):
            conditions = {**conditions, **y}
        elif y is not None:
            if not known:
                raise UsageError(f"model {self.checked.name} has no condition, but y was given")
            conditions = {**conditions, known[0]: y}
        self.one_pass_sampling(
            method, steps, {k: v for k, v in conditions.items() if k not in known}
        )
        values = self._sample_values(n, conditions, generator)
        handlers: list[Handler] = [Draw(generator)]
        if mean:
            handlers.append(Mean(self.data_names))
        return self.run(values, handlers, (n,))[self.data_names[0]]

    def objective_terms(self) -> list[str]:
        terms = []
        for site in self.checked.sites:
            role = self.checked.variables[site.name].role
            if role == "data":
                terms.append(f"reconstruction: E_q[log p({site.name} | {', '.join(site.given)})]")
        for name in self.enumerate:
            terms.append(f"{name}: summed out exactly (TraceEnum_ELBO)")
        for q in self.checked.guide:
            kl = "analytic" if self.analytic else "Monte Carlo"
            if self.residual:
                kl += ", residual q = N(mu_p + dmu, (sigma_p dsigma)^2) (NVAE)"
            terms.append(f"KL(q({q.name} | {', '.join(q.given)}) || p({q.name})): {kl}")
        if self.objective == "iwae":
            terms.append(f"importance-weighted bound with k = {self.k} (Burda et al. 2016)")
        if self.beta != 1.0 or self.anneal:
            terms.append(f"KL weight beta = {self.beta}, anneal = {self.anneal}")
        if self.free_bits:
            terms.append(f"free bits: {self.free_bits} nats per latent dimension")
        return terms


class VQModel(LatentModel):
    """A VQ-VAE (van den Oord et al. 2017) or, with two quantised codes, a VQ-VAE-2 (Razavi et
    al. 2019) compiled to plain torch: one :class:`~gendsl.lower.vq_levels.CodeLevel` (codebook
    and prior) per ``e = quantize(enc(...))``, in the order the spec quantises them.

    loss = −log p(x | z_q(x)) + Σ_levels [‖sg[z_e] − e‖² (unless the codebook is an EMA) +
    β_c ‖z_e − sg[e]‖² + the prior's NLL of sg[codes]], per data point.  ``sample`` draws every
    level's codes from its prior (uniform, as the paper trains, or a PixelCNN) and decodes them.
    The first level's codebook and prior are ``quantizer`` and ``prior``; a further level
    ``b``'s are ``quantizer_b`` and ``prior_b``; a PixelCNN prior of a level after the first
    is conditioned on the codes of the level before it.
    """

    def __init__(self, checked: CheckedModel, bindings: Mapping[str, int]):
        codes = [(a.target, a.value) for a in checked.assigns if isinstance(a.value, ir.Quantize)]
        if not codes:
            raise UsageError("loss vq needs a code assigned by 'e = quantize(enc(x))'")
        self.code_name, self.encoder_call = codes[0][0], codes[0][1].operand
        super().__init__(checked, bindings)
        kw = checked.loss.kwargs
        codebook = kw.get("codebook", "ema")
        decay = float(_opt_kwargs(codebook, ("decay",)).get("decay", 0.99))
        name = codebook.name if isinstance(codebook, Opt) else codebook
        if name not in ("ema", "loss"):
            raise UsageError(f"codebook must be ema(decay = ...) or loss, got {name!r}")
        self.commitment = float(kw.get("commitment", 0.25))
        self.levels: list[CodeLevel] = []
        for i, (code, quantize) in enumerate(codes):
            K, dim = self.classes_of(code), self.shape_of(code)[0]
            quantizer = VectorQuantizer(K, dim, ema=name == "ema", decay=decay)
            try:
                grid = self.nets[quantize.operand.func].out_shape[1:]
                cond_K = self.levels[-1].quantizer.K if self.levels else None
                prior = code_prior(kw.get("prior"), K, grid, cond_K=cond_K)
            except ValueError as err:
                raise UsageError(f"loss vq: {err}") from err
            suffix = "" if i == 0 else f"_{code}"
            self.add_module(f"quantizer{suffix}", quantizer)
            self.add_module(f"prior{suffix}", prior)
            self.levels.append(CodeLevel(code, quantizer, prior))
            self.program.bind(code, quantizing(quantizer, compile_expr(quantize.operand)))
        self.quantizer, self.prior = self.levels[0].quantizer, self.levels[0].prior

    def _configure_loss(self, loss: Opt) -> None:
        self.objective, self.enumerate, self.anneal, self.beta = "vq", [], None, 1.0
        self.free_bits, self.analytic, self.k, self.residual = 0.0, True, 1, False

    def _vq_run(self, data: Mapping[str, Tensor]) -> tuple[Tensor, list[LevelTerms]]:
        """−log p(x | z_q(x)) per data point and every level's terms."""
        trace = Trace()
        self.run(data, [trace, Condition(data)], (self._batch_size(data),))
        nll = -sum(r.fn.log_prob(r.value) for r in trace.records.values() if r.observed)
        return nll, [level_terms(level) for level in self.levels]

    def _vq_terms(self, data: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """The first level's terms with the NLL (as :meth:`_vq_run`)."""
        nll, (first, *_) = self._vq_run(data)
        return {
            "nll": nll,
            "codebook": first.codebook,
            "commitment": first.commitment,
            "index": first.index,
        }

    def loss(self, batch: Batch) -> Tensor:
        """Reconstruction NLL + Σ_levels (codebook + β_c·commitment + prior NLL), mean per data
        point."""
        value, terms = self._vq_run(self.as_data(batch))
        for level, t, cond in zip(self.levels, terms, _previous(terms), strict=True):
            value = value + self.commitment * t.commitment
            value = value + level.prior.loss(t.index, self.step, cond)
            if not level.quantizer.ema:
                value = value + t.codebook
        if self.training and torch.is_grad_enabled():
            self.step.add_(1)  # in place: no Module.__setattr__ per step
        return value.mean()

    def elbo(self, x: Batch) -> Tensor:
        """log p(x | z_q(x)) + Σ_levels log p(c(x)): the ELBO with a deterministic one-hot
        posterior (van den Oord et al. 2017, sec. 3.2); log p(c) = −log K·(code positions) under
        the uniform prior."""
        nll, terms = self._vq_run(self.as_data(x))
        log_p = [
            level.prior.log_prob(t.index, cond)
            for level, t, cond in zip(self.levels, terms, _previous(terms), strict=True)
        ]
        return -nll + sum(log_p)

    def iwae(self, x: Batch, k: int = 16) -> Tensor:
        raise UsageError("a VQ-VAE has a deterministic posterior; use elbo(x)")

    @torch.no_grad()
    def diagnostics(self, batch: Batch) -> dict[str, float]:
        """Reconstruction NLL, and per level the codebook and commitment terms, code perplexity
        and usage (keys end in ``/name`` with more than one level)."""
        nll, terms = self._vq_run(self.as_data(batch))
        out = {"nll": float(nll.mean())}
        many = len(self.levels) > 1
        for level, t in zip(self.levels, terms, strict=True):
            out.update(level_diagnostics(level, t, f"/{level.name}" if many else ""))
        return out

    def _sample_values(
        self, n: int, conditions: Mapping[str, Any], generator: torch.Generator | None
    ) -> dict[str, Any]:
        """The prior's values with each level's grid of codes drawn from its prior."""
        values = super()._sample_values(n, conditions, generator)
        index = None
        for level in self.levels:
            index = level.prior.sample(n, generator=generator, device=self.like.device, cond=index)
            values[level.name] = level.quantizer.lookup(index)
        return values

    def objective_terms(self) -> list[str]:
        terms = ["reconstruction: -log p(x | z_q(x))", f"commitment: {self.commitment}"]
        for level in self.levels:
            q = level.quantizer
            book = f"EMA, decay {q.decay}" if q.ema else "||sg[z_e] - e||^2"
            terms.append(f"codebook of {level.name}: {q.K} codes, {book}")
            terms.append(f"{level.name} {level.prior.describe()}")
        return terms


def _previous(terms: Sequence[LevelTerms]) -> list[Tensor | None]:
    """Per level, the codes of the level before it (``None`` for the first): what a
    conditional prior of the level is given."""
    return [None, *(t.index for t in terms[:-1])]


def build_latent(checked: CheckedModel, bindings: dict[str, int]) -> LatentModel:
    """The latent family's back end: a :class:`VQModel` for ``loss vq``, else a
    :class:`LatentModel`."""
    cls = VQModel if checked.loss.name == "vq" else LatentModel
    return cls(checked, bindings)
