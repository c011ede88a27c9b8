"""The normalizing-flow family: ``flow f { ... }`` with ``x = f(z)`` and a base ``z ~ ...``.

The layers of a flow block are listed from the **data side**: ``flow f { L₁; L₂; ...; Lₙ }``
defines T = Lₙ ∘ ... ∘ L₁ mapping data to the base (as RealNVP and Glow write their steps, and as
actnorm's data-dependent init needs), and ``f = T⁻¹``, so ``x = f(z)`` pushes the base forward.
``repeat N { ... }`` repeats its body N times.  The exact log-likelihood is the change of
variables (Dinh et al. 2017, "Density Estimation Using Real NVP", eq. 3)

log p(x) = log p_z(T(x)) + log|det ∂T(x)/∂x|,

the loss ``nll`` is its negative mean, and sampling is x = T⁻¹(z), z ~ p_z, in one pass.

Layers (see :mod:`gendsl.lower.flow_layers` and :mod:`gendsl.lower.cnf`): ``affine_coupling``,
``additive_coupling``, ``actnorm``, ``reverse``, ``permute(seed)`` (the k-th permute layer of a
flow uses ``seed + k``, so repeated layers differ), ``invconv(lu)``, ``batchnorm(momentum)``,
``cnf(net, trace, solver, rtol, atol)``, ``learntop`` (the last layer: Glow's learned prior at
the top), and for image data ``squeeze`` and ``split(prior)`` (``prior = learned``: Glow's
conditional prior of the factored-out half; see :mod:`gendsl.lower.flow_priors`).  On vector
data ``squeeze`` and ``split`` are errors: there is no spatial axis to fold, and a vector flow
factors nothing out.  Coupling networks default to ``MLP(hidden = [64, 64])``.

Image data (``image[C, H, W]``, values k/(levels - 1)) is dequantised in training:
y = (k + u)/levels, u ~ U[0, 1), and the loss is the bound -(log p(y) - D log levels) on the
discrete negative log-likelihood (Theis et al. 2016, eq. 8); ``levels`` defaults to 256 (8-bit
images) and is the attribute :attr:`FlowModel.levels` (17 for the bundled digits).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import torch
from torch import Tensor, nn

from gendsl import ir
from gendsl.analysis.library import FLOW_LAYERS
from gendsl.data import IMAGE_LEVELS
from gendsl.errors import SpecError
from gendsl.families.text import option
from gendsl.ir import CheckedModel, NetSpec, Opt, Site, to_value
from gendsl.lower.base import Model
from gendsl.lower.cnf import CNF
from gendsl.lower.flow_layers import (
    ActNorm,
    AdditiveCoupling,
    AffineCoupling,
    BatchNorm,
    Flow,
    InvConv,
    Permute,
    Reverse,
    Split,
    Squeeze,
    Transform,
)
from gendsl.lower.flow_priors import LearnedTop, SplitPrior
from gendsl.lower.interpret import Program
from gendsl.metrics.pf_ode import bits_per_dim, dequantize, dequantized_log_prob
from gendsl.objectives.densities import Density
from gendsl.protocol import Batch, Capabilities
from gendsl.sampling.flow import flow_ancestral

__all__ = ["DEFAULT_LEVELS", "FlowModel", "build", "expand_layers", "layer_options"]

#: Quantisation levels assumed for image data unless :attr:`FlowModel.levels` is set.
DEFAULT_LEVELS = IMAGE_LEVELS
_DEFAULT_NET = Opt("MLP")


def layer_options(layer: ir.Layer) -> dict[str, Any]:
    """A layer's options as plain values, defaults from the library table filled in."""
    spec = FLOW_LAYERS[layer.name]
    values = spec.defaults()
    values.update(zip(spec.params, (to_value(a) for a in layer.args), strict=False))
    values.update({k.name: to_value(k.value) for k in layer.kwargs})
    return values


def expand_layers(items: tuple[ir.FlowItem, ...]) -> list[ir.Layer]:
    """The flat list of layers with every ``repeat N { ... }`` unrolled."""
    out: list[ir.Layer] = []
    for item in items:
        if isinstance(item, ir.Repeat):
            for _ in range(item.count):
                out.extend(expand_layers(item.body))
        else:
            out.append(item)
    return out


class FlowModel(Model):
    """A compiled normalizing flow (see the module docstring)."""

    family = "flow"

    def __init__(self, checked: CheckedModel, bindings: Mapping[str, int]):
        super().__init__(checked, bindings)
        data = self.sole_data_variable()
        self.data_name = data.name
        self.is_image = data.type.kind == "image"
        self.levels = DEFAULT_LEVELS
        assign = next((a for a in checked.assigns if a.target == self.data_name), None)
        call = None if assign is None else assign.value
        if not (
            isinstance(call, ir.Call)
            and call.func in checked.flows
            and len(call.args) == 1
            and isinstance(call.args[0], ir.Name)
        ):
            raise SpecError(
                f"a flow model needs '{self.data_name} = f(z)' with f a flow and z a latent",
                data[0].span,
                checked.source,
            )
        self.latent_name = call.args[0].id
        self.base_site: Site = next(s for s in checked.sites if s.name == self.latent_name)
        self.program = Program(self)
        self.data_shape = self.shape_of(self.data_name)
        self.latent_shape = self.shape_of(self.latent_name)
        self._permutes = 0
        self.nets = nn.ModuleDict()  # a flow's networks live inside its layers
        flow_ast = checked.flows[call.func]
        self.flow = self._build(expand_layers(flow_ast.body), self.data_shape, call.func)
        self._cnfs = [m for m in self.flow.modules() if isinstance(m, CNF)]
        self.capabilities = Capabilities(
            likelihood=True, dequantized_likelihood=True, steps=bool(self._cnfs)
        )
        self.base_shape = self.flow.out_shape(self.data_shape)
        if math.prod(self.base_shape) != math.prod(self.latent_shape):
            raise SpecError(
                f"flow {call.func} maps {self.data_name} {list(self.data_shape)} to "
                f"{math.prod(self.base_shape)} values but {self.latent_name} has shape "
                f"{list(self.latent_shape)}",
                assign.span,
                checked.source,
            )

    # -------------------------------------------------------------------- lowering

    def _error(self, message: str, layer: ir.Layer) -> SpecError:
        return SpecError(message, layer.span, self.checked.source)

    def _net(self, opt: Any, layer: ir.Layer, name: str, shape, out_shape, time: bool):
        opt = _DEFAULT_NET if opt is None else opt
        if not time and "time" in opt.kwargs:
            raise self._error(f"the network of {layer.name} takes no time; remove time", layer)
        spec = NetSpec(
            name, opt.name, opt.kwargs, ("x",), (shape,), out_shape, time, None, layer.span
        )
        return self.build_net(spec)

    def _layer(self, layer: ir.Layer, shape: tuple[int, ...], name: str) -> Transform:
        o = layer_options(layer)
        kind = layer.name
        if kind in ("affine_coupling", "additive_coupling"):
            out = (2, *shape) if kind == "affine_coupling" else shape
            net = self._net(o["net"], layer, name, shape, out, time=False)
            cls = AffineCoupling if kind == "affine_coupling" else AdditiveCoupling
            t = cls(shape, net, o["mask"])
            kept = int(t.mask.sum())
            if kept in (0, math.prod(shape)):
                raise self._error(
                    f"{kind}(mask = {o['mask']}) on shape {list(shape)} leaves no "
                    f"{'input for the network' if kept == 0 else 'value to transform'}; use "
                    f"the other mask or more dimensions",
                    layer,
                )
            return t
        if kind == "cnf":
            net = self._net(o["net"], layer, name, shape, shape, time=True)
            return CNF(
                shape, net, trace=o["trace"], solver=o["solver"], rtol=o["rtol"], atol=o["atol"]
            )
        if kind == "squeeze":
            if len(shape) != 3 or shape[1] % 2 or shape[2] % 2:
                raise self._error(
                    f"squeeze needs image data [C, H, W] with even H and W; here the flow "
                    f"acts on shape {list(shape)}",
                    layer,
                )
            return Squeeze(shape)
        simple = {
            "actnorm": lambda: ActNorm(shape),
            "reverse": lambda: Reverse(shape),
            "invconv": lambda: InvConv(shape, bool(o["lu"])),
            "batchnorm": lambda: BatchNorm(shape, float(o["momentum"])),
            "learntop": lambda: LearnedTop(shape),
        }
        if kind == "permute":
            self._permutes += 1
            return Permute(shape, int(o["seed"]) + self._permutes - 1)
        return simple[kind]()

    def _build(self, layers: list[ir.Layer], shape: tuple[int, ...], name: str) -> Flow:
        out: list[Transform] = []
        start = shape
        for i, layer in enumerate(layers):
            if layer.name == "split":
                if len(shape) != 3 or shape[0] < 2:
                    raise self._error(
                        f"split factors out channels of image data [C, H, W] with C >= 2 "
                        f"(squeeze first); here the flow acts on shape {list(shape)}",
                        layer,
                    )
                keep = shape[0] - shape[0] // 2
                inner = self._build(layers[i + 1 :], (keep, *shape[1:]), f"{name}.{i}")
                learned = layer_options(layer)["prior"] == "learned"
                prior = SplitPrior(keep, shape[0] // 2) if learned else None
                out.append(Split(shape, inner, prior))
                break
            if layer.name == "learntop" and i != len(layers) - 1:
                raise self._error(
                    "learntop is the learned prior at the top of the flow and goes last; "
                    "move it to the end of the flow block",
                    layer,
                )
            t = self._layer(layer, shape, f"{name}.{i}")
            out.append(t)
            shape = t.out_shape(shape)
        return Flow(start, out)

    # -------------------------------------------------------------------- the base

    def base(self, n: int) -> Density:
        """The base distribution p_z of the latent, ``n`` draws' worth (the base site of the
        spec's program, :mod:`gendsl.lower.interpret`)."""
        return self.program.density(self.latent_name, (n,))

    # -------------------------------------------------------------------- the hooks

    def _data(self, batch: Batch) -> Tensor:
        return self.as_data(batch)[self.data_name]

    def log_prob(self, x: Batch, *, dequantize: int | None = None) -> Tensor:
        """log p(x) = log p_z(T(x)) + log|det ∂T/∂x| per data point, in nats (exact; a CNF uses
        the exact divergence in eval mode).  ``dequantize = L``: the bound of
        :meth:`dequantized_log_prob` for data quantised to L levels."""
        if dequantize:
            return self.dequantized_log_prob(x, levels=dequantize)
        x = self._data(x)
        z, ladj = self.flow.call_and_ladj(x)
        if z.shape[1:] != self.latent_shape:
            z = z.reshape(x.shape[0], *self.latent_shape)
        return self.base(x.shape[0]).log_prob(z) + ladj

    def dequantized_log_prob(
        self, x: Batch, *, levels: int | None = None, generator: torch.Generator | None = None
    ) -> Tensor:
        """Jensen bound E_u log p(y) - D log levels ≤ log P(k) on the discrete data
        x = k/(levels - 1), one uniform draw u per point (Theis et al. 2016, eq. 8)."""
        x = self._data(x)
        levels = self.levels if levels is None else levels
        y = dequantize(x, levels=levels, generator=generator)
        return dequantized_log_prob(self.log_prob(y), math.prod(self.data_shape), levels=levels)

    def bits_per_dim(
        self, x: Batch, *, levels: int | None = None, generator: torch.Generator | None = None
    ) -> Tensor:
        """Bits per dimension: of the dequantised bound for image data (``levels`` as in
        :meth:`dequantized_log_prob`), else of the exact density."""
        if self.is_image:
            lp = self.dequantized_log_prob(x, levels=levels, generator=generator)
        else:
            lp = self.log_prob(x)
        return bits_per_dim(lp, math.prod(self.data_shape))

    def set_data_levels(self, levels: int) -> None:
        """The quantisation levels of the training images (dequantised in the loss)."""
        self.levels = levels

    def loss(self, batch: Batch) -> Tensor:
        """nll: -mean log p(x), dequantised for image data (see the module docstring).  CNF
        layers with ``trace = hutchinson`` estimate the divergence here in eval mode too, so a
        held-out loss costs what a training loss does (:meth:`log_prob` stays exact)."""
        with self._estimated_traces():
            if self.is_image:
                return -self.dequantized_log_prob(batch).mean()
            return -self.log_prob(batch).mean()

    @contextmanager
    def _estimated_traces(self) -> Iterator[None]:
        """The CNF layers' ``estimate`` set for the duration of a block."""
        for m in self._cnfs:
            m.estimate = True
        try:
            yield
        finally:
            for m in self._cnfs:
                m.estimate = False

    @torch.no_grad()
    def sample(
        self,
        n: int,
        *,
        method: str | None = None,
        steps: int | None = None,
        generator: torch.Generator | None = None,
        **opts: Any,
    ) -> Tensor:
        """x = T⁻¹(z), z ~ p_z, in one pass; ``temperature`` (else the spec's
        ``sample with ancestral(temperature = T)``, else 1) multiplies the standard deviation of
        the base and of every learned prior (:func:`gendsl.sampling.flow.flow_ancestral`)."""
        temperature = opts.pop("temperature", None)
        self.one_pass_sampling(method, steps, opts)
        if temperature is None:
            temperature = option(self.checked.sampler, "temperature", 1)

        def inverse(z: Tensor) -> Tensor:
            return self.flow.inverse(z.reshape(n, *self.base_shape)).reshape(n, *self.data_shape)

        base = self.base(n).to_dist()
        return flow_ancestral(inverse, base, temperature=float(temperature), generator=generator)

    @property
    def last_nfe(self) -> int | None:
        """Velocity evaluations of the CNF layers' last solve (``None`` without CNF layers)."""
        return sum(m.nfe for m in self._cnfs) if self._cnfs else None

    def objective_terms(self) -> list[str]:
        x, z = self.data_name, self.latent_name
        lines = [
            f"nll = -E log p({x}), log p({x}) = log p_{z}(T({x})) + log|det dT/d{x}| "
            f"(change of variables, Dinh et al. 2017, eq. 3)"
        ]
        if self.is_image:
            lines.append(
                f"{x} dequantised: ({x} (levels - 1) + u)/levels, u ~ U[0, 1), levels = "
                f"{self.levels}; bound minus D log levels (Theis et al. 2016)"
            )
        lines.append("T = " + " -> ".join(_layer_names(self.flow)))
        return lines


def _layer_names(flow: Flow) -> list[str]:
    names: list[str] = []
    for layer in flow.layers:
        names.append(type(layer).__name__)
        if isinstance(layer, Split):
            prior = "(learned prior)" if layer.prior is not None else ""
            names[-1] = f"Split{prior}[{' -> '.join(_layer_names(layer.inner)) or 'identity'}]"
    return names


def build(checked: CheckedModel, bindings: Mapping[str, int]) -> FlowModel:
    """The compiled model of a checked flow spec."""
    return FlowModel(checked, bindings)
