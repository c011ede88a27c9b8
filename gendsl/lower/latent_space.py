"""A diffusion or flow-matching model over the latent space of a frozen autoencoder run.

Latent diffusion (Rombach et al. 2022, "High-Resolution Image Synthesis with Latent Diffusion
Models", CVPR): the spec's process is a model of ``z = ae.encode(x)`` (the checker rewrote it
into a model whose data variable is ``z``, :mod:`gendsl.analysis.latent_space`), compiled by its
family as usual; :class:`LatentSpaceModel` wraps it.  Training encodes each batch with the
frozen autoencoder and trains the process on the scaled codes s·E(x); sampling runs the
process and decodes, x = D(z / s).

The scale s makes the codes' standard deviation one, as the process's prior assumes: it is
1 / std of the first training batch's codes (Rombach et al. 2022, sec. 4.3.2 and appendix
G, "rescale the latent ... by the component-wise standard deviation" estimated on the first
batch), kept as a buffer, so it travels with the checkpoint.

The autoencoder (a latent-family run: a VAE, whose encoding is a draw of q(z | x), or a VQ-VAE,
whose encoding is the encoder's output before quantisation and whose decoder quantises first,
the "VQ-reg" variant of the paper) is a frozen submodule: its weights are in this model's
state dict, so the run is whole without the autoencoder's folder, and the autoencoder's
configuration (its spec sources, sizes, levels) is stored in the run's configuration
(:meth:`LatentSpaceModel.embedded_runs`), from which :func:`gendsl.lower.trained.compile_run`
rebuilds it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from gendsl.errors import UsageError
from gendsl.ir import LatentSpace
from gendsl.lower.base import Model
from gendsl.lower.handlers import Condition, Mean, Trace
from gendsl.lower.latent import LatentModel, VQModel
from gendsl.protocol import Batch, PretrainedRun

__all__ = ["LatentSpaceModel", "code_name", "decode", "encode", "latent_scale", "wrap"]


def code_name(ae: LatentModel) -> str:
    """The latent the autoencoder's data site is given: what ``encode`` gives and ``decode``
    takes.

    :raises UsageError: the data site is given several latents, or conditions."""
    data = ae.data_names[0]
    site = next(s for s in ae.checked.sites if s.name == data)
    if len(site.given) != 1 or ae.checked.condition_vars():
        raise UsageError(
            f"the autoencoder {ae.checked.name} generates {data} from "
            f"{', '.join(site.given) or 'nothing'}; a latent space needs a data site given one "
            f"latent and no condition ('{data} | z ~ ...')"
        )
    return site.given[0]


@torch.no_grad()
def encode(ae: LatentModel, x: Tensor) -> Tensor:
    """E(x): a VQ-VAE's encoder output before quantisation, a VAE's draw of q(z | x)."""
    data = {ae.data_names[0]: x}
    code, n = code_name(ae), (x.shape[0],)
    if isinstance(ae, VQModel):
        ae.run(data, [Condition(data)], n)
        level = next(lv for lv in ae.levels if lv.name == code)
        return level.quantizer.last["z_e"]
    trace = Trace()
    ae.run(data, [trace, Condition(data)], n, guide=True)
    return trace.records[code].value


@torch.no_grad()
def decode(ae: LatentModel, z: Tensor) -> Tensor:
    """D(z): the mean of p(x | z) (a VQ-VAE snaps z to its codebook first)."""
    code = code_name(ae)
    if isinstance(ae, VQModel):
        level = next(lv for lv in ae.levels if lv.name == code)
        z = level.quantizer(z)
    given = {code: z}
    data = ae.data_names[0]
    return ae.run(given, [Condition(given), Mean([data])], (z.shape[0],))[data]


def latent_scale(codes: Tensor) -> Tensor:
    """s = 1 / std(codes) over every entry of a batch of codes (Rombach et al. 2022, app. G);
    under torch.distributed the variance is averaged over the ranks, so every rank agrees."""
    var = codes.float().var()
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.all_reduce(var)
        var = var / torch.distributed.get_world_size()
    return var.clamp_min(1e-12).rsqrt()


class LatentSpaceModel(Model):
    """The spec's process (``inner``) over the latent of a frozen autoencoder (see the module
    docstring).  The autoencoder is attached from the run the spec names (``use``) before
    training, or restored from a checkpoint's configuration (:meth:`restore_embedded`)."""

    def __init__(self, inner: Model):
        space = inner.checked.latent_space
        assert space is not None
        super().__init__(inner.checked, inner.sizes)
        unsupported = inner.capabilities.training_step or inner.capabilities.runs
        if unsupported:
            raise UsageError(
                f"model {inner.checked.name}: a {inner.family} model that trains in its own "
                "step or takes another run is not supported over a latent space yet"
            )
        self.family = inner.family
        self.space: LatentSpace = space
        self.inner = inner
        self.autoencoder: LatentModel | None = None
        self._embedded: dict[str, Any] = {}
        self._scale_known = False
        self._batch_names = [space.data.name, *(v.name for v in inner.checked.condition_vars())]
        self.register_buffer("latent_scale", torch.zeros(()))  # 0: not measured yet
        self.flag = f"use {space.use}"
        used = PretrainedRun(
            self.flag, "a trained autoencoder run (VAE or VQ-VAE)", True, path=space.run
        )
        self.capabilities = dataclasses.replace(
            inner.capabilities,
            likelihood=False,
            dequantized_likelihood=False,
            elbo=False,
            runs=(used,),
        )
        self.guidance_scale = inner.guidance_scale

    @property
    def nets(self):  # type: ignore[override]
        """The process's networks (the autoencoder's are its own)."""
        return self.inner.nets

    # -------------------------------------------------------------------- the autoencoder

    @property
    def ae(self) -> LatentModel:
        """The attached autoencoder.

        :raises UsageError: none is attached yet."""
        if self.autoencoder is None:
            raise UsageError(
                f"model {self.checked.name} works in the latent space of the run "
                f"{self.space.run!r}; attach it first (gendsl train does)"
            )
        return self.autoencoder

    def attach_run(self, flag: str, path: Path) -> None:
        """``use ae = run(...)``: the trained autoencoder at ``path``, checked and frozen."""
        from gendsl.lower.trained import compile_run
        from gendsl.trained import open_trained

        if flag != self.flag:
            super().attach_run(flag, path)
        trained = open_trained(path)
        ae = compile_run(trained)
        where = f"the run {Path(path).parent}"
        self._set_autoencoder(ae, where)
        config = dict(trained.config)
        config.setdefault("model", ae.checked.name)
        self._embedded = {self.space.use: {"path": str(Path(path).parent), "config": config}}

    def use_autoencoder(self, ae: Model) -> None:
        """Use the compiled (trained) autoencoder ``ae`` (from Python; ``gendsl train`` attaches
        the run the spec names and stores its configuration with the run)."""
        self._set_autoencoder(ae, f"the autoencoder {ae.checked.name}")

    def _set_autoencoder(self, ae: Model, where: str) -> None:
        if not isinstance(ae, LatentModel):
            raise UsageError(
                f"{where} is a {ae.family} model ({ae.checked.name}); a latent space comes "
                "from an autoencoder: a latent-family run (VAE or VQ-VAE)"
            )
        x = self.space.data
        want = self.shape_of_data()
        got = ae.shape_of(ae.data_names[0])
        if got != want:
            raise UsageError(
                f"{where} encodes data of shape {list(got)}, but this model declares "
                f"'data {x.name} : {x.type.kind}{list(want)}'; use a run trained on this data"
            )
        ae.eval().requires_grad_(False)
        probe = encode(ae, torch.zeros(1, *want, device=ae.like.device))
        latent = self.shape_of(self.space.latent)
        if tuple(probe.shape[1:]) != latent:
            raise UsageError(
                f"{where} encodes {x.name} into codes of shape {list(probe.shape[1:])}; "
                f"declare 'latent {self.space.latent} : real{list(probe.shape[1:])}' "
                f"(declared: real{list(latent)})"
            )
        self.autoencoder = ae.to(self.like.device)

    def shape_of_data(self) -> tuple[int, ...]:
        """The per-sample shape of the data the autoencoder encodes."""
        from gendsl.lower.base import resolve_shape

        return resolve_shape(self.space.data.type.shape, self.sizes)

    def embedded_runs(self) -> dict[str, Any]:
        """The configuration of the attached autoencoder run by its name in the spec (stored
        in the run's configuration; its weights are in this model's state dict)."""
        return dict(self._embedded)

    def restore_embedded(self, embedded: Mapping[str, Any]) -> tuple[str, ...]:
        """Rebuild the autoencoder from a checkpoint's stored configuration (its sources, not
        its folder, which may have moved); the weights come with this model's state dict."""
        from gendsl.lower.trained import compile_config

        entry = embedded.get(self.space.use)
        if entry is None:
            raise UsageError(
                f"the checkpoint of model {self.checked.name} holds no autoencoder "
                f"'{self.space.use}'; train it again"
            )
        ae = compile_config(entry["config"], where=entry.get("path", "the stored run"))
        self._set_autoencoder(ae, f"the stored run {entry.get('path', '')}".strip())
        self._embedded = {self.space.use: dict(entry)}
        return (self.flag,)

    def train(self, mode: bool = True) -> LatentSpaceModel:
        """Train the process; the autoencoder stays in eval mode (frozen)."""
        super().train(mode)
        if self.autoencoder is not None:
            self.autoencoder.eval()
        return self

    # -------------------------------------------------------------------- the hooks

    def codes(self, batch: Batch) -> dict[str, Tensor]:
        """The batch with the data replaced by its scaled codes s·E(x) (s measured on the
        first batch seen in training)."""
        data = self.as_data(batch)
        z = encode(self.ae, data.pop(self.space.data.name))
        if not self._scale_known:  # one host read, then never again
            self._scale_known = float(self.latent_scale) != 0.0
        if not self._scale_known:
            if not self.training:
                raise UsageError(
                    f"model {self.checked.name} has not measured its latent scale: train it"
                )
            self.latent_scale.copy_(latent_scale(z))
            self._scale_known = True
        return {self.space.latent: z * self.latent_scale, **data}

    def loss(self, batch: Batch) -> Tensor:
        """The process's loss on the batch's scaled codes."""
        return self.inner.loss(self.codes(batch))

    def diagnostics(self, batch: Batch) -> dict[str, float]:
        return dict(self.inner.diagnostics(self.codes(batch)))

    def step_report(self) -> dict[str, float]:
        return dict(self.inner.step_report())

    def sample(
        self,
        n: int,
        *,
        method: str | None = None,
        steps: int | None = None,
        generator: torch.Generator | None = None,
        **opts: Any,
    ) -> Tensor:
        """``n`` samples x = D(z / s) of the process's codes z."""
        z = self.inner.sample(n, method=method, steps=steps, generator=generator, **opts)
        self.last_nfe = self.inner.last_nfe
        return decode(self.ae, z / self.latent_scale)

    def set_data_levels(self, levels: int) -> None:
        """The data's levels concern the autoencoder (set from its own run), not the codes."""

    def objective_terms(self) -> list[str]:
        return [
            f"codes z = s * {self.space.use}.encode({self.space.data.name}), the autoencoder "
            f"frozen (run {self.space.run}); samples {self.space.data.name} = "
            f"{self.space.use}.decode(z / s)",
            *self.inner.objective_terms(),
        ]

    def describe(self) -> str:
        ae = self.autoencoder
        head = f"latent space of {self.space.use} = run({self.space.run!r})"
        if ae is not None:
            head += f": {ae.checked.name}, {sum(p.numel() for p in ae.parameters())} frozen"
            head += " parameters"
        return self.inner.describe() + "\n" + head


def wrap(model: Model) -> Model:
    """``model`` over its spec's latent space when it declares one (else itself)."""
    if model.checked.latent_space is None:
        return model
    return LatentSpaceModel(model)
