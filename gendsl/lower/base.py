"""The compiled model: the :class:`torch.nn.Module` every family's back end subclasses.

A compiled model holds the checked spec (``.checked``, ``.spec_text``), the networks as
submodules (so ``parameters()`` is what an optimiser trains and ``state_dict()`` is plain), and a
training-step counter buffer.  It declares what it can do in ``capabilities``
(:class:`gendsl.protocol.Capabilities`), which callers ask instead of probing for methods.
Families implement the hooks:

===============  ==========================================================================
``loss``         the training objective for one batch, a differentiable scalar
``sample``       ``n`` draws of the data variable
``log_prob``     the exact log-likelihood per data point (``capabilities.likelihood``)
``elbo``         a lower bound on it per data point (``capabilities.elbo``)
``diagnostics``  named floats for logs (``capabilities.diagnostics``)
``step_report``  named floats about the last loss call (``capabilities.step_report``)
``attach_run``   load a trained run the model takes (``capabilities.runs``)
``describe``     the text ``gendsl compile`` prints
===============  ==========================================================================
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from gendsl.errors import UsageError
from gendsl.ir import CheckedModel, NetSpec, Opt, Shape, Variable
from gendsl.nn import build_network, count_parameters
from gendsl.protocol import Batch, Capabilities

__all__ = ["Model", "resolve_shape"]


def resolve_shape(shape: Shape, sizes: Mapping[str, int]) -> tuple[int, ...]:
    """``shape`` with every symbolic size replaced by its bound value."""
    out = []
    for s in shape:
        if isinstance(s, str):
            if s not in sizes:
                raise UsageError(
                    f"the size {s} is not bound; pass {s}=... or data whose shape fixes it"
                )
            s = sizes[s]
        out.append(int(s))
    return tuple(out)


def _plain(value: Any) -> Any:
    """A network option as :func:`~gendsl.nn.build_network` takes it (``fourier(32)`` ->
    ``("fourier", 32)``)."""
    if isinstance(value, Opt):
        return (value.name, *value.args) if value.args else value.name
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


class Model(nn.Module):
    """A compiled gendsl model (see the module docstring for the hooks)."""

    family: str = ""
    #: What the model can do (a family's class declares it; a model whose capabilities depend
    #: on its spec sets its own in ``__init__``).
    capabilities: Capabilities = Capabilities()
    #: Network evaluations of the last ``sample`` or ``log_prob`` of a model that samples in
    #: steps (``capabilities.steps``); ``None`` before the first.
    last_nfe: int | None = None
    #: The default scale of a guided model's sampler (classifier-free or classifier guidance),
    #: which ``sample(..., scale=s)`` overrides; ``None`` for a model without guidance.
    guidance_scale: float | None = None
    #: The model's networks by the names the spec gives them, built by :meth:`build_net`; every
    #: back end sets it in ``__init__`` (empty where the networks live elsewhere, as a flow's
    #: inside its layers).
    nets: nn.ModuleDict

    def __init__(self, checked: CheckedModel, bindings: Mapping[str, int]):
        super().__init__()
        self.checked = checked
        self.spec_text = checked.source.text
        self.sizes: dict[str, int] = {**checked.sizes, **bindings}
        self._batch_names = [v.name for v in checked.data_vars() + checked.condition_vars()]
        self.register_buffer("step", torch.zeros((), dtype=torch.long))
        self.register_buffer("_ref", torch.zeros(()), persistent=False)

    # -------------------------------------------------------------------- shapes and data

    def sole_data_variable(self) -> Variable:
        """The model's one data variable (families other than the latent one model exactly one).

        :raises UsageError: the spec declares none or several.
        """
        data = self.checked.data_vars()
        if len(data) != 1:
            found = ", ".join(v.name for v in data) or "none"
            raise UsageError(
                f"a {self.family} model generates exactly one data variable; found {found}"
            )
        return data[0]

    def shape_of(self, name: str) -> tuple[int, ...]:
        """The per-sample shape of variable ``name`` with sizes bound."""
        return resolve_shape(self.checked.variables[name].type.shape, self.sizes)

    def classes_of(self, name: str) -> int | None:
        """The number of classes of a ``label``/``code`` variable (``None`` for others)."""
        k = self.checked.variables[name].type.classes
        return None if k is None else resolve_shape((k,), self.sizes)[0]

    @property
    def like(self) -> Tensor:
        """A float scalar on the model's device and dtype (for constructing constants)."""
        return self._buffers["_ref"]  # type: ignore[return-value]  # not via Module.__getattr__

    def as_data(self, batch: Batch) -> dict[str, Tensor]:
        """A batch as ``{variable name: tensor}`` on the model's device.

        A tensor is the (single) data variable; a pair/list is the data variables followed by
        the conditions, in declaration order; a mapping is taken as it is.
        """
        names = self._batch_names
        like = self.like
        if isinstance(batch, Tensor):
            if batch.dtype == like.dtype and batch.device == like.device:
                return {names[0]: batch}  # a training batch as it usually comes
            items = {names[0]: batch}
        elif isinstance(batch, Mapping):
            items = dict(batch)
        else:
            if len(batch) > len(names):
                raise UsageError(
                    f"the batch has {len(batch)} parts but the model takes {len(names)} "
                    f"({', '.join(names)})"
                )
            items = dict(zip(names, batch, strict=False))
        device, dtype = like.device, like.dtype
        return {
            k: v
            if v.device == device and (v.dtype == dtype or not v.is_floating_point())
            else v.to(device, dtype if v.is_floating_point() else v.dtype)
            for k, v in items.items()
        }

    def build_net(self, spec: NetSpec, in_shapes: Sequence[tuple[int, ...]] | None = None):
        """The network of ``spec`` built by :func:`gendsl.nn.build_network`, sizes bound."""
        options = {k: _plain(v) for k, v in spec.options.items()}
        shapes = in_shapes or [resolve_shape(s, self.sizes) for s in spec.in_shapes]
        classes = spec.cond_classes
        try:
            return build_network(
                spec.kind,
                options,
                in_shapes=list(shapes),
                out_shape=resolve_shape(spec.out_shape, self.sizes),
                time=("concat" if spec.time and "time" not in options else None),
                cond_classes=None if classes is None else resolve_shape((classes,), self.sizes)[0],
            )
        except ValueError as err:
            raise UsageError(f"network {spec.name}: {err}") from err

    # -------------------------------------------------------------------- the hooks

    def loss(self, batch: Batch) -> Tensor:
        """The training loss of one batch (a differentiable scalar, mean per data point)."""
        raise NotImplementedError

    def sample(
        self,
        n: int,
        *,
        method: str | None = None,
        steps: int | None = None,
        generator: torch.Generator | None = None,
        **opts: Any,
    ) -> Tensor:
        """``n`` samples of the data variable."""
        raise NotImplementedError

    def one_pass_sampling(
        self, method: str | None, steps: int | None, opts: Mapping[str, Any]
    ) -> None:
        """Check the arguments of :meth:`sample` for a family that samples in one ancestral pass
        (latent, flow, adversarial): no other method, no steps, no other options."""
        if method not in (None, "ancestral"):
            raise UsageError(f"the {self.family} family samples with ancestral, got {method!r}")
        if steps is not None:
            raise UsageError(
                f"the {self.family} family samples in one pass and takes no steps, "
                f"got steps={steps}"
            )
        if opts:
            raise UsageError(
                f"unknown sampling option(s) {', '.join(sorted(opts))} for the {self.family} "
                "family"
            )

    def log_prob(self, x: Batch) -> Tensor:
        """Exact log-likelihood per data point (nats)."""
        raise UsageError(f"the {self.family} family has no exact log-likelihood")

    def elbo(self, x: Batch) -> Tensor:
        """A lower bound on the log-likelihood per data point (nats)."""
        raise UsageError(f"the {self.family} family has no evidence lower bound")

    def diagnostics(self, batch: Batch) -> dict[str, float]:
        """Named numbers describing the model on ``batch`` (for logs)."""
        return {}

    def step_report(self) -> dict[str, float]:
        """Named numbers about the last ``loss`` call (``capabilities.step_report``)."""
        return {}

    def attach_run(self, flag: str, path: Path) -> None:
        """Load the trained run named by ``flag`` (one of ``capabilities.runs``) from the
        checkpoint at ``path`` (opened with :func:`gendsl.trained.open_trained`)."""
        raise UsageError(f"model {self.checked.name} takes no {flag}")

    def embedded_runs(self) -> dict[str, Any]:
        """The configurations of the trained runs this model holds inside its own weights (a
        latent-space model's autoencoder), stored in its run's configuration."""
        return {}

    def restore_embedded(self, embedded: Mapping[str, Any]) -> tuple[str, ...]:
        """Rebuild the runs of :meth:`embedded_runs` from a stored configuration (their weights
        come with this model's state dict); the flags of ``capabilities.runs`` they stand for."""
        raise UsageError(f"model {self.checked.name} holds no other run")

    def set_data_levels(self, levels: int) -> None:
        """Tell the model that its data are quantised to ``levels`` values per dimension.
        Only a family that dequantises its data in training (flows on images) uses it."""

    def objective_terms(self) -> list[str]:
        """One line per term of the training objective (for :meth:`describe`)."""
        return []

    def describe(self) -> str:
        """What ``gendsl compile`` prints: family, sites, networks, objective."""
        c = self.checked
        lines = [f"model {c.name}: {self.family} family"]
        for title, sites in (("sample sites", c.sites), ("guide sites", c.guide)):
            if sites:
                lines.append(f"{title}:")
                for s in sites:
                    given = f" | {', '.join(s.given)}" if s.given else ""
                    role = c.variables[s.name].role if s.name in c.variables else "?"
                    lines.append(
                        f"  {s.name}{given} ~ {s.dist}  [{role}, {self.shape_of(s.name)}]"
                    )
        if self.nets:
            lines.append("networks:")
            for name, net in self.nets.items():
                ins = ", ".join(str(tuple(s)) for s in net.in_shapes)
                lines.append(
                    f"  {name} = {c.nets[name].kind}: {ins} -> {tuple(net.out_shape)}, "
                    f"{count_parameters(net)} parameters"
                )
        lines.append(f"parameters: {count_parameters(self)}")
        terms = self.objective_terms()
        if terms:
            lines.append(f"objective: loss {c.loss.name}")
            lines.extend(f"  {t}" for t in terms)
        return "\n".join(lines)
