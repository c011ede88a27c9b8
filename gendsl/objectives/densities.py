"""The site densities of the numerics: the distribution table (:mod:`gendsl.distributions`) with
its torch constructors, and the :class:`Density` the losses work on.

A site ``z ~ Normal(loc, scale)`` of a variable with per-sample shape ``S`` becomes
``dist.Normal(loc, scale)`` broadcast to ``batch + S`` and made an event over ``S`` with
``.to_event(len(S))``, so a Pyro ``plate("data", B)`` sees batch shape ``[B]``.  A *packed* site
``z ~ Normal(enc(x))`` takes every parameter from one network output of shape
``batch + (n_params,) + S``; positive parameters pass through ``softplus(u) + 1e-5`` and a
Bernoulli/Categorical/ContinuousBernoulli parameter is read as logits.

The training loss works on :class:`Density` objects instead: the same parameters with closed
forms for the common cases (Normal log-density, draw and KL; Bernoulli log-density from logits),
falling back to the Pyro distribution for everything else.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from types import MappingProxyType

import pyro.distributions as pdist
import torch
import torch.nn.functional as F
from torch import Tensor
from torch.distributions import Distribution, Independent, kl_divergence

from gendsl.distributions import DISTRIBUTIONS, PACKED_SCALE_MIN, DistInfo
from gendsl.errors import UsageError
from gendsl.objectives import draws
from gendsl.objectives.mixtures import GaussianMixture

__all__ = [
    "TORCH_CLASSES",
    "Density",
    "base_of",
    "bernoulli_logits_log_prob",
    "broadcast_shape",
    "build",
    "draw",
    "kl_normal_normal",
    "kl_normal_std_normal",
    "make_dist",
    "normal_log_prob",
    "unpack_params",
    "unpacker",
]

#: The torch (Pyro) class of every distribution of the table, taking the parameters under their
#: ``DistInfo.torch_name`` keywords.
TORCH_CLASSES: Mapping[str, type[Distribution]] = MappingProxyType(
    {
        "Normal": pdist.Normal,
        "Laplace": pdist.Laplace,
        "StudentT": pdist.StudentT,
        "LogNormal": pdist.LogNormal,
        "Uniform": pdist.Uniform,
        "Beta": pdist.Beta,
        "Gamma": pdist.Gamma,
        "Exponential": pdist.Exponential,
        "Bernoulli": pdist.Bernoulli,
        "Categorical": pdist.Categorical,
        "ContinuousBernoulli": pdist.ContinuousBernoulli,
        "GaussianMixture": GaussianMixture,
    }
)


def _info(name: str) -> DistInfo:
    info = DISTRIBUTIONS.get(name)
    if info is None or name not in TORCH_CLASSES:
        raise UsageError(
            f"no back end for the distribution {name!r}; expected one of "
            f"{', '.join(DISTRIBUTIONS)}"
        )
    return info


def build(name: str, params: Mapping[str, Tensor], *, validate: bool = False) -> Distribution:
    """The torch class of ``name`` called with ``params`` (the table's names) as its keywords."""
    info = _info(name)
    if info.alternatives and len(params) != 1:
        raise UsageError(f"{name} needs exactly one of {' or '.join(info.alternatives)}")
    kwargs = {info.torch_name(k): v for k, v in params.items()}
    return TORCH_CLASSES[name](**kwargs, validate_args=validate)


def unpacker(name: str, event_shape: tuple[int, ...]) -> Callable[[Tensor], dict[str, Tensor]]:
    """The function splitting one network output ``[..., n_params, *event_shape]`` into named
    parameters (decided once per site, applied every step).

    Positive parameters are ``softplus(u) + 1e-5``; the single parameter of a Bernoulli,
    Categorical or ContinuousBernoulli is returned as ``logits``.  For a Categorical the class
    axis is the event axis of the network output (the label itself has shape ``()``).
    """
    info = _info(name)
    if not info.packable:
        raise UsageError(
            f"{name} cannot take its parameters from one network; write {', '.join(info.params)}"
        )
    names = info.packed_names()
    n, axis = len(names), -len(event_shape) - 1
    positive = [p in info.positive for p in names]

    def split(out: Tensor) -> dict[str, Tensor]:
        if out.dim() < -axis or out.shape[axis] != n:
            raise UsageError(
                f"{name} takes {n} parameter(s) from one network, but its output has shape "
                f"{tuple(out.shape)}"
            )
        parts = out.unbind(axis)
        return {
            p: F.softplus(u) + PACKED_SCALE_MIN if pos else u
            for p, pos, u in zip(names, positive, parts, strict=True)
        }

    return split


def unpack_params(name: str, out: Tensor, event_shape: tuple[int, ...]) -> dict[str, Tensor]:
    """Split one network output ``[..., n_params, *event_shape]`` into named parameters (see
    :func:`unpacker`)."""
    return unpacker(name, event_shape)(out)


def broadcast_shape(*shapes: tuple[int, ...] | torch.Size) -> torch.Size:
    """The broadcast of ``shapes`` (as ``torch.broadcast_shapes``, whose first call imports
    ``torch._refs`` and with it sympy: a second of CPU in every ``gendsl sample``)."""
    return torch.broadcast_tensors(*(torch.empty(s, device="meta") for s in shapes))[0].shape


def make_dist(
    name: str,
    params: Mapping[str, Tensor | float],
    *,
    batch_shape: tuple[int, ...],
    event_shape: tuple[int, ...],
    like: Tensor,
    classes: int | None = None,
    validate: bool = False,
) -> Distribution:
    """The Pyro distribution ``name(**params)`` with batch ``batch_shape`` (or wider, when a
    parameter carries enumeration or particle dimensions) and event ``event_shape``.

    Numbers become tensors of ``like``'s device and dtype.  For a Categorical, ``classes`` is the
    number of classes ``K`` and the parameters are broadcast to ``batch + (K,)``.  Argument
    validation is off unless ``validate`` (the spec checker already bounds literal
    parameters, and network outputs are positive by construction).
    """
    full = (*batch_shape, *event_shape) if classes is None else (*batch_shape, classes)
    if _info(name).mixture:
        return _mixture(params, batch_shape, event_shape, like, validate)
    tensors = {}
    for key, value in params.items():
        t = torch.as_tensor(value, device=like.device)
        t = t.to(like.dtype) if t.is_floating_point() or t.dim() == 0 else t
        tensors[key] = t if t.shape == full else t.expand(broadcast_shape(t.shape, full))
    d = build(name, tensors, validate=validate)
    return d.to_event(len(event_shape)) if event_shape else d


def _mixture(
    params: Mapping[str, Tensor | float],
    batch_shape: tuple[int, ...],
    event_shape: tuple[int, ...],
    like: Tensor,
    validate: bool,
) -> Distribution:
    """A :class:`GaussianMixture` whose parameters (ending in the component axis K) are
    broadcast to ``batch + (K,)`` (weights) and ``batch + event + (K,)`` (locs, scales)."""
    t = {k: torch.as_tensor(v, device=like.device, dtype=like.dtype) for k, v in params.items()}
    k = max(v.shape[-1] if v.dim() else 1 for v in t.values())
    weights = t["weights"].expand(broadcast_shape(t["weights"].shape, (*batch_shape, k)))
    full = (*batch_shape, *event_shape, k)
    locs, scales = (t[p].expand(broadcast_shape(t[p].shape, full)) for p in ("locs", "scales"))
    return GaussianMixture(
        weights, locs, scales, event_dims=len(event_shape), validate_args=validate
    )


def base_of(d: Distribution) -> tuple[Distribution, int]:
    """The distribution under any ``Independent`` wrappers and the number of event dims they
    added."""
    extra = 0
    while isinstance(d, Independent):
        extra += d.reinterpreted_batch_ndims
        d = d.base_dist
    return d, extra


def _uniform(d: Distribution, generator: torch.Generator | None) -> Tensor:
    shape = d.batch_shape + d.event_shape
    ref = d.mean if not isinstance(d, pdist.Categorical) else d.probs
    u = draws.rand(shape, generator=generator, device=ref.device, dtype=ref.dtype)
    return u.clamp(torch.finfo(ref.dtype).tiny, 1 - torch.finfo(ref.dtype).eps)


_ICDF = (
    pdist.Normal,
    pdist.Laplace,
    pdist.Uniform,
    pdist.Exponential,
    pdist.ContinuousBernoulli,
)


def draw(d: Distribution, *, generator: torch.Generator | None = None) -> Tensor:
    """One sample of ``d`` (no gradient), reproducible from ``generator``.

    Normal, LogNormal, Laplace, Uniform, Exponential and ContinuousBernoulli use the inverse CDF
    of a uniform draw; Bernoulli compares a uniform draw with ``probs``; Categorical uses
    :func:`torch.multinomial`.  Other distributions (Gamma, Beta, StudentT) are drawn from the
    global RNG forked and seeded from ``generator``.
    """
    if generator is None:
        return d.sample()
    base, _ = base_of(d)
    if isinstance(base, pdist.LogNormal):
        return torch.exp(draw(pdist.Normal(base.loc, base.scale), generator=generator))
    if isinstance(base, pdist.Bernoulli):
        return (_uniform(base, generator) < base.probs).to(base.probs.dtype)
    if isinstance(base, pdist.Categorical):
        probs = base.probs.reshape(-1, base.probs.shape[-1])
        idx = torch.multinomial(probs, 1, generator=generator)
        return idx.reshape(base.batch_shape)
    if isinstance(base, _ICDF):
        return base.icdf(_uniform(base, generator))
    seed = int(torch.randint(0, 2**62, (), generator=generator, device=generator.device))
    devices = [base.mean.device] if base.mean.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        return base.sample()


# ------------------------------------------------------------------ the training hot path

_LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)


def _log(v: Tensor | float) -> Tensor | float:
    return v.log() if isinstance(v, Tensor) else math.log(v)


def normal_log_prob(x: Tensor, loc: Tensor | float, scale: Tensor | float) -> Tensor:
    """log N(x; μ, σ) = −(x − μ)² / (2σ²) − log σ − ½ log 2π, per element.  For the numbers
    μ = 0 and σ = 1 it is −x²/2 − ½ log 2π, the same values in two fewer passes."""
    if _is_number(loc, 0) and _is_number(scale, 1):
        return x.pow(2).mul(-0.5) - _LOG_SQRT_2PI
    return -((x - loc) ** 2) / (2 * scale**2) - _log(scale) - _LOG_SQRT_2PI


def bernoulli_logits_log_prob(x: Tensor, logits: Tensor | float) -> Tensor:
    """log Bern(x; σ(ℓ)) = x ℓ − log(1 + e^ℓ) = −BCE(ℓ, x), per element, from the logits."""
    if not isinstance(logits, Tensor):
        logits = torch.as_tensor(logits, device=x.device, dtype=x.dtype)
    if logits.shape != x.shape:
        logits, x = torch.broadcast_tensors(logits, x)
    return -F.binary_cross_entropy_with_logits(logits, x, reduction="none")


def kl_normal_std_normal(loc: Tensor, scale: Tensor) -> Tensor:
    """KL(N(μ, σ²) ‖ N(0, 1)) = ½ (μ² + σ² − 1) − log σ, per element (Kingma & Welling 2014,
    appendix B)."""
    return 0.5 * (loc**2 + scale**2 - 1) - _log(scale)


def kl_normal_normal(
    loc_q: Tensor | float,
    scale_q: Tensor | float,
    loc_p: Tensor | float,
    scale_p: Tensor | float,
) -> Tensor | float:
    """KL(N(μ_q, σ_q²) ‖ N(μ_p, σ_p²)) = ½ (r + (μ_q − μ_p)² / σ_p² − 1 − log r) with
    r = σ_q² / σ_p², per element."""
    ratio = (scale_q / scale_p) ** 2
    return 0.5 * (ratio + ((loc_q - loc_p) / scale_p) ** 2 - 1 - _log(ratio))


class Density:
    """A site's distribution as the training loss uses it: the parameters, the batch and event
    shapes, and closed forms (log-density, reparameterised draw, KL) where the table has them,
    so the hot path builds no :mod:`torch.distributions` object.  Anything else goes through
    :meth:`to_dist`, the same Pyro distribution :func:`make_dist` builds.

    Closed forms: Normal (log-density, draw, KL to a Normal) and Bernoulli with logits
    (log-density).  Parameters may be Python numbers; results have the full batch + event shape.
    """

    __slots__ = ("_dist", "_shape", "batch", "classes", "event", "like", "name", "params")

    def __init__(
        self,
        name: str,
        params: Mapping[str, Tensor | float],
        *,
        batch: tuple[int, ...],
        event: tuple[int, ...],
        like: Tensor,
        classes: int | None = None,
    ):
        self.name, self.params, self.batch, self.event = name, params, batch, event
        self.like, self.classes = like, classes
        self._dist: Distribution | None = None
        self._shape: tuple[int, ...] | None = None

    def to_dist(self) -> Distribution:
        """The Pyro distribution of :func:`make_dist` (built once)."""
        if self._dist is None:
            self._dist = make_dist(
                self.name,
                self.params,
                batch_shape=self.batch,
                event_shape=self.event,
                like=self.like,
                classes=self.classes,
            )
        return self._dist

    @property
    def shape(self) -> tuple[int, ...]:
        """The shape of a value: batch (widened by parameters with extra leading axes) + event
        (worked out once)."""
        if self._shape is None:
            self._shape = self._value_shape()
        return self._shape

    def _value_shape(self) -> tuple[int, ...]:
        full = (*self.batch, *self.event)
        if DISTRIBUTIONS[self.name].mixture:  # its parameters end in the components
            return full
        drop = 0 if self.classes is None else 1  # a Categorical's parameters end in the classes
        wider = []
        for p in self.params.values():
            if isinstance(p, Tensor) and p.shape[: p.dim() - drop] != full:
                wider.append(p.shape[: p.dim() - drop])
        return tuple(broadcast_shape(full, *wider)) if wider else full

    def _full(self, t: Tensor | float) -> Tensor:
        """``t`` broadcast to :attr:`shape` (numbers become tensors like ``like``)."""
        shape = self.shape
        if not isinstance(t, Tensor):
            return torch.full(shape, t, device=self.like.device, dtype=self.like.dtype)
        return t if t.shape == shape else t.expand(shape)

    def sum_event(self, t: Tensor) -> Tensor:
        """``t`` (per element) summed over the event axes, per batch element."""
        return t.sum(tuple(range(-len(self.event), 0))) if self.event else t

    def log_prob_elements(self, value: Tensor) -> Tensor | None:
        """The closed-form log-density per element, or ``None`` when there is none."""
        p = self.params
        if self.name == "Normal":
            return normal_log_prob(value, p["loc"], p["scale"])
        if self.name == "Bernoulli" and "logits" in p:
            return bernoulli_logits_log_prob(value, p["logits"])
        return None

    def log_prob(self, value: Tensor) -> Tensor:
        """log p(value) summed over the event, per batch element."""
        elements = self.log_prob_elements(value)
        if elements is None:
            return self.to_dist().log_prob(value)
        return self.sum_event(elements)

    @property
    def has_rsample(self) -> bool:
        """Whether :meth:`rsample` is reparameterised (differentiable in the parameters)."""
        return self.name == "Normal" or self.to_dist().has_rsample

    def rsample(self) -> Tensor:
        """A reparameterised draw where there is one (μ + σ ε for a Normal, consuming the global
        RNG exactly as :class:`torch.distributions.Normal` does), else a plain draw."""
        if self.name != "Normal":
            d = self.to_dist()
            return d.rsample() if d.has_rsample else d.sample()
        loc, scale = self.params["loc"], self.params["scale"]
        ref = loc if isinstance(loc, Tensor) else self.like
        eps = ref.new_empty(self.shape).normal_()
        if _is_number(loc, 0) and _is_number(scale, 1):
            return eps  # N(0, 1): μ + σ ε is ε
        return loc + eps * scale

    @property
    def mean(self) -> Tensor:
        """The mean, with the full shape."""
        if self.name == "Normal":
            return self._full(self.params["loc"])
        return self.to_dist().mean

    def kl_elements(self, p: Density) -> Tensor | None:
        """KL(self ‖ p) per element, ``[*batch, *event]``, or ``None`` without a closed form.

        Normal pairs use :func:`kl_normal_std_normal` when ``p`` is the literal N(0, 1) and
        :func:`kl_normal_normal` otherwise; other pairs use torch's registered closed forms.
        """
        if self.event != p.event:
            return None
        if self.name == "Normal" and p.name == "Normal":
            q_loc, q_scale = self.params["loc"], self.params["scale"]
            p_loc, p_scale = p.params["loc"], p.params["scale"]
            if _is_number(p_loc, 0) and _is_number(p_scale, 1) and isinstance(q_scale, Tensor):
                return self._full(kl_normal_std_normal(q_loc, q_scale))
            return self._full(kl_normal_normal(q_loc, q_scale, p_loc, p_scale))
        try:
            return kl_divergence(base_of(self.to_dist())[0], base_of(p.to_dist())[0])
        except NotImplementedError:
            return None


def _is_number(v: Tensor | float, target: float) -> bool:
    return not isinstance(v, Tensor) and v == target
