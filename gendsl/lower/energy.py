"""The energy family: unnormalised densities p(x) ∝ exp(-E(x)).

The energy is a network (``energy E(x)``) or an expression (``energy U(x) = ...``); its score is
s(x) = -∇E(x) (:func:`gendsl.objectives.energy.energy_score`).  Losses:

* ``contrastive_divergence(sampler = langevin(steps, step, noise), buffer = N, reinit = p)`` —
  persistent contrastive divergence (Hinton 2002; Tieleman 2008) with negative samples from
  short-run Langevin chains started from a replay buffer of N past chain ends, a fraction p
  restarted from noise (Du & Mordatch 2019).  The buffer is a registered buffer, so a checkpoint
  resumes the chains exactly; it is only written in training mode;
* ``dsm(sigma)`` — denoising score matching at one noise level (Vincent 2011);
* ``ssm(projections)`` — sliced score matching (Song et al. 2019).

Sampling runs :func:`~gendsl.objectives.energy.langevin` (the ``sample with langevin(...)``
settings) from noise: uniform on [0, 1] for images, else uniform on the box [-b, b]^D with
b = :attr:`EnergyModel.noise_box` (gendsl's 2-D data sets are standardised).  The family has no
exact likelihood (the normaliser is unknown).

A class-conditional energy ``energy E(x, y)`` of a label ``y`` is JEM's (Grathwohl et al. 2020):
the network gives logits f(x), E(x, y) = -f(x)[y], the marginal energy is -logsumexp f(x) and
the loss adds the classifier's cross-entropy -log softmax f(x)[y] to the marginal's loss;
sampling runs Langevin dynamics on E(x, y) for the given labels.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from gendsl.errors import UsageError
from gendsl.ir import CheckedModel, Opt
from gendsl.lower.base import Model
from gendsl.lower.conditions import sampling_conditions
from gendsl.lower.expr import compile_expr
from gendsl.lower.interpret import Program
from gendsl.objectives import draws
from gendsl.objectives.dsm import dsm_fixed_sigma, sliced_score_matching
from gendsl.objectives.energy import (
    contrastive_divergence_loss,
    energy_score,
    jem_class_energy,
    jem_class_log_probs,
    jem_marginal_energy,
    langevin,
    replay_starts,
)
from gendsl.protocol import Batch, Capabilities

__all__ = ["EnergyModel", "build"]


def _langevin_settings(opt: Opt | str | None) -> dict[str, Any]:
    """``langevin(steps, step, noise)`` as keywords of :func:`langevin`."""
    if not isinstance(opt, Opt):
        return {}
    return {**dict(zip(("steps", "step", "noise"), opt.args, strict=False)), **opt.kwargs}


class EnergyModel(Model):
    """A compiled energy-based model (see the module docstring)."""

    family = "energy"
    capabilities = Capabilities(diagnostics=True)
    #: Half-width of the uniform box that chains of real-valued data start from.
    noise_box: float = 3.0
    #: α of the energy-magnitude regulariser α E(E(x⁺)² + E(x⁻)²) in contrastive divergence
    #: (Du & Mordatch 2019, Sec. 3.3); it keeps the energies' scale from drifting.
    alpha: float = 0.0

    def __init__(self, checked: CheckedModel, bindings: Mapping[str, int]):
        super().__init__(checked, bindings)
        data = self.sole_data_variable()
        self.data_name = data.name
        self.image = data.type.kind == "image"
        self.nets = nn.ModuleDict({n: self.build_net(s) for n, s in checked.nets.items()})
        self.program = Program(self, values=self.nets, packed=False)
        energy = checked.energy
        #: JEM's label (``energy E(x, y)`` with a label y; the network E gives the logits).
        self.label = (
            next(
                (
                    p
                    for p in energy.params
                    if p in checked.variables and checked.variables[p].type.kind == "label"
                ),
                None,
            )
            if energy.value is None
            else None
        )
        self._energy_expr = None if energy.value is None else compile_expr(energy.value)
        #: The network that is the whole energy (``energy E(x)``), else None.
        self._energy_net = energy.name if energy.value is None and self.label is None else None
        self.loss_name = checked.loss.name
        self.loss_options = dict(checked.loss.kwargs)
        self.sampler = _langevin_settings(checked.sampler)
        if self.loss_name == "contrastive_divergence":
            self.chain = _langevin_settings(self.loss_options.get("sampler"))
            size = int(self.loss_options["buffer"])
            if size < 1:
                raise UsageError(f"buffer must be >= 1, got {size}")
            self.register_buffer("replay", self.init_noise(size))

    # ------------------------------------------------------------------ energy and score

    def logits(self, x: Tensor) -> Tensor:
        """JEM's classifier f(x), [B, K] (the network of ``energy E(x, y)``)."""
        return self.nets[self.checked.energy.name](x)

    def class_log_probs(self, x: Tensor) -> Tensor:
        """JEM's log p(y | x) = log softmax f(x), [B, K]."""
        return jem_class_log_probs(self.logits(x))

    def energy(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        """E(x) per sample, [B].  An expression energy that keeps the data's shape (written per
        coordinate, ``energy U(x) = 0.5 * x^2``) is summed over it: independent coordinates.
        A JEM energy is E(x, y) = -f(x)[y] for labels ``y``, the marginal's -logsumexp f(x)
        without them."""
        if self._energy_net is not None:
            return self.nets[self._energy_net](x)
        if self.label is not None:
            logits = self.logits(x)
            return jem_marginal_energy(logits) if y is None else jem_class_energy(logits, y)
        assert self._energy_expr is not None  # a network energy returned above
        (param,) = self.checked.energy.params
        e = self._energy_expr(self.program.scope({param: x}))
        if not isinstance(e, Tensor):
            raise UsageError(f"the energy {self.checked.energy.name} does not depend on {param}")
        return e.reshape(x.shape[0], -1).sum(1) if e.dim() > 1 else e

    def score(self, x: Tensor, *, create_graph: bool = False) -> Tensor:
        """s(x) = -∇E(x)."""
        return energy_score(self.energy, x, create_graph=create_graph)

    def init_noise(self, n: int, *, generator: torch.Generator | None = None) -> Tensor:
        """``n`` starting points of Langevin chains (see the module docstring)."""
        shape = (n, *self.shape_of(self.data_name))
        ref = self.like
        u = draws.rand(shape, generator=generator, device=ref.device, dtype=ref.dtype)
        return u if self.image else self.noise_box * (2 * u - 1)

    # ------------------------------------------------------------------ losses

    def negative_samples(self, n: int) -> Tensor:
        """Model samples for contrastive divergence: chains from the replay buffer (a fraction
        ``reinit`` from noise), run by the loss's Langevin sampler; the ends are written back
        to the buffer in training mode."""
        idx, x0 = replay_starts(
            self.replay,
            n,
            self.init_noise(n),
            reinit=float(self.loss_options["reinit"]),
        )
        x_neg = langevin(self.energy, x0, **self.chain)
        if self.training:
            self.replay[idx] = x_neg
        return x_neg

    def loss(self, batch: Batch) -> Tensor:
        """The mean loss of one batch: contrastive divergence, DSM or SSM of the (marginal)
        energy; for JEM plus the classifier's cross-entropy -log p(y | x) (Grathwohl et al.
        2020, eq. 8: log p(x, y) = log p(x) + log p(y | x))."""
        items = self.as_data(batch)
        x = items[self.data_name]
        density = self.density_loss(x)
        if self.label is None:
            return density
        y = items[self.label].long()
        return density + F.nll_loss(self.class_log_probs(x), y)

    def density_loss(self, x: Tensor) -> Tensor:
        """The loss of p(x): contrastive divergence, DSM or SSM."""
        opts = self.loss_options
        if self.loss_name == "contrastive_divergence":
            x_neg = self.negative_samples(x.shape[0])
            return contrastive_divergence_loss(
                self.energy(x), self.energy(x_neg), alpha=self.alpha
            )

        def score(v: Tensor) -> Tensor:
            return self.score(v, create_graph=True)

        if self.loss_name == "dsm":
            return dsm_fixed_sigma(score, x, float(opts["sigma"])).mean()
        return sliced_score_matching(score, x, int(opts["projections"])).mean()

    def diagnostics(self, batch: Batch) -> dict[str, float]:
        """The mean energy of the data and the mean squared norm of the score there."""
        x = self.as_data(batch)[self.data_name]
        s = self.score(x)
        return {
            "energy_data": float(self.energy(x).mean()),
            "score_norm2": float(s.reshape(s.shape[0], -1).pow(2).sum(1).mean()),
        }

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
        """``n`` samples by Langevin dynamics from noise; ``steps`` and the keywords of
        :func:`~gendsl.objectives.energy.langevin` (``step``, ``noise``, ``metropolis``)
        override the spec's ``sample with langevin(...)``.  A JEM model samples p(x | y) for
        the labels ``y`` (the energy -f(x)[y])."""
        cond = sampling_conditions(self.checked, y, n, self.like.device)
        if method not in (None, "langevin"):
            raise UsageError(f"the energy family samples with langevin, got {method!r}")
        unknown = set(opts) - {"step", "noise", "metropolis"}
        if unknown:
            raise UsageError(f"unknown langevin options: {', '.join(sorted(unknown))}")
        settings = {**self.sampler, **opts}
        if steps is not None:
            settings["steps"] = steps
        x0 = self.init_noise(n, generator=generator)
        labels = cond.get(self.label) if self.label is not None else None

        def energy(v: Tensor) -> Tensor:
            return self.energy(v, labels)

        return langevin(energy, x0, generator=generator, **settings)

    def objective_terms(self) -> list[str]:
        o = self.loss_options
        if self.loss_name == "dsm":
            return [f"E 1/2 |s(x + {o['sigma']:g} z) + z / {o['sigma']:g}|^2, s = -grad E"]
        if self.loss_name == "ssm":
            return [f"E v^T grad(v^T s(x)) + 1/2 |s(x)|^2, {o['projections']} projection(s) v"]
        c = self.chain
        return [
            "E E(x_data) - E E(x_model)",
            f"x_model: {c['steps']} Langevin steps (step {c['step']:g}, noise {c['noise']:g}) "
            f"from a replay buffer of {o['buffer']}, {o['reinit']:g} restarted from noise",
        ]


def build(checked: CheckedModel, bindings: Mapping[str, int]) -> EnergyModel:
    """The compiled model of a checked energy spec."""
    return EnergyModel(checked, bindings)
