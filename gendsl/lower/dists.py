"""The spec's distribution table lowered to :mod:`pyro.distributions`.

A site ``z ~ Normal(loc, scale)`` of a variable with per-sample shape ``S`` becomes
``dist.Normal(loc, scale)`` broadcast to ``batch + S`` and made an event over ``S`` with
``.to_event(len(S))``, so a Pyro ``plate("data", B)`` sees batch shape ``[B]``.  A *packed* site
``z ~ Normal(enc(x))`` takes every parameter from one network output of shape
``batch + (n_params,) + S``; positive parameters pass through ``softplus(u) + 1e-5`` and a
Bernoulli/Categorical/ContinuousBernoulli parameter is read as logits.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import pyro.distributions as pdist
import torch
import torch.nn.functional as F
from torch import Tensor
from torch.distributions import Distribution, Independent

from gendsl.errors import UsageError

__all__ = [
    "DISTRIBUTIONS",
    "PACKED_EPS",
    "DistInfo",
    "base_of",
    "draw",
    "make_dist",
    "unpack_params",
]

#: Added to ``softplus`` of a packed positive parameter so a scale never reaches zero.
PACKED_EPS = 1e-5


@dataclass(frozen=True)
class DistInfo:
    """One row of the table: positional parameter names, which are positive, the support kind
    (``real``, ``positive``, ``unit``, ``binary``, ``label``) and the Pyro constructor taking the
    canonical parameters as keywords."""

    params: tuple[str, ...]
    positive: tuple[str, ...]
    support: str
    build: Callable[..., Distribution]
    logits_alias: bool = False


def _beta(a: Tensor, b: Tensor, **kw: bool) -> Distribution:
    return pdist.Beta(a, b, **kw)


def _probs_or_logits(cls: type[Distribution]) -> Callable[..., Distribution]:
    def build(
        probs: Tensor | None = None, logits: Tensor | None = None, **kw: bool
    ) -> Distribution:
        if (probs is None) == (logits is None):
            raise UsageError(f"{cls.__name__} needs exactly one of probs or logits")
        return cls(probs=probs, **kw) if logits is None else cls(logits=logits, **kw)

    return build


DISTRIBUTIONS: dict[str, DistInfo] = {
    "Normal": DistInfo(("loc", "scale"), ("scale",), "real", pdist.Normal),
    "Laplace": DistInfo(("loc", "scale"), ("scale",), "real", pdist.Laplace),
    "StudentT": DistInfo(("df", "loc", "scale"), ("df", "scale"), "real", pdist.StudentT),
    "LogNormal": DistInfo(("loc", "scale"), ("scale",), "positive", pdist.LogNormal),
    "Uniform": DistInfo(("low", "high"), (), "real", pdist.Uniform),
    "Beta": DistInfo(("a", "b"), ("a", "b"), "unit", _beta),
    "Gamma": DistInfo(
        ("concentration", "rate"), ("concentration", "rate"), "positive", pdist.Gamma
    ),
    "Exponential": DistInfo(("rate",), ("rate",), "positive", pdist.Exponential),
    "Bernoulli": DistInfo(("probs",), (), "binary", _probs_or_logits(pdist.Bernoulli), True),
    "Categorical": DistInfo(("probs",), (), "label", _probs_or_logits(pdist.Categorical), True),
    "ContinuousBernoulli": DistInfo(
        ("probs",), (), "unit", _probs_or_logits(pdist.ContinuousBernoulli), True
    ),
}


def _info(name: str) -> DistInfo:
    info = DISTRIBUTIONS.get(name)
    if info is None:
        raise UsageError(
            f"no back end for the distribution {name!r}; expected one of "
            f"{', '.join(DISTRIBUTIONS)}"
        )
    return info


def unpack_params(name: str, out: Tensor, event_shape: tuple[int, ...]) -> dict[str, Tensor]:
    """Split one network output ``[..., n_params, *event_shape]`` into named parameters.

    Positive parameters are ``softplus(u) + 1e-5``; the single parameter of a Bernoulli,
    Categorical or ContinuousBernoulli is returned as ``logits``.  For a Categorical the class
    axis is the event axis of the network output (the label itself has shape ``()``).
    """
    info = _info(name)
    if name == "Uniform":
        raise UsageError("Uniform cannot take its parameters from one network; write low, high")
    n = len(info.params)
    axis = out.dim() - len(event_shape) - 1
    if axis < 0 or out.shape[axis] != n:
        raise UsageError(
            f"{name} takes {n} parameter(s) from one network, but its output has shape "
            f"{tuple(out.shape)}"
        )
    parts = out.unbind(axis)
    if info.logits_alias:
        return {"logits": parts[0]}
    return {
        p: F.softplus(u) + PACKED_EPS if p in info.positive else u
        for p, u in zip(info.params, parts, strict=True)
    }


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
    info = _info(name)
    full = (*batch_shape, *event_shape) if classes is None else (*batch_shape, classes)
    tensors = {}
    for key, value in params.items():
        t = torch.as_tensor(value, device=like.device)
        t = t.to(like.dtype) if t.is_floating_point() or t.dim() == 0 else t
        tensors[key] = t if t.shape == full else t.expand(torch.broadcast_shapes(t.shape, full))
    d = info.build(**tensors, validate_args=validate)
    return d.to_event(len(event_shape)) if event_shape else d


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
    u = torch.rand(shape, generator=generator, device=ref.device, dtype=ref.dtype)
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
