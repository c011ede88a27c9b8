"""The model protocol: what a trained model can do, declared rather than probed.

Every compiled model (:class:`gendsl.lower.base.Model`) carries a :class:`Capabilities` value in
its ``capabilities`` attribute, and the code that trains, samples and evaluates it asks that
value instead of looking for methods with ``hasattr``:

==========================  ====================================================================
``likelihood``              ``log_prob(x)`` is the exact log-likelihood per data point
``dequantized_likelihood``  ``log_prob(x, dequantize=levels)`` is the bound for quantised data
``elbo``                    ``elbo(x)`` is a lower bound on the log-likelihood per data point
``steps``                   sampling integrates in steps; ``last_nfe`` counts the network calls
``runs``                    the trained runs the model takes from other runs (teacher, base, ...)
``training_step``           ``training_step(batch, step, optimizers)`` replaces the default step
``param_groups``            ``param_groups()`` asks for one optimiser per group (needs the above)
``diagnostics``             ``diagnostics(batch)`` gives named numbers for the evaluation log
``step_report``             ``step_report()`` gives named numbers about the last ``loss`` call,
                            logged with the training step's loss (a certified OT gap)
==========================  ====================================================================

The training loop (:func:`gendsl.train.fit`) reads only this module, so it trains any
``nn.Module`` that satisfies :class:`Trainable` without importing the compiler.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from torch import Tensor, nn, optim

__all__ = [
    "Batch",
    "Capabilities",
    "Diagnosed",
    "PretrainedRun",
    "Reporting",
    "SeveralPlayers",
    "Trainable",
]

#: What ``loss`` and ``diagnostics`` take: the data tensor, ``(x, y)`` with the condition, or a
#: mapping from variable names to tensors.
Batch = Tensor | Sequence[Tensor] | Mapping[str, Tensor]


@dataclass(frozen=True)
class PretrainedRun:
    """A trained run a model takes from another run: ``flag`` names it (``--teacher``,
    ``--base`` on the command line, ``previous`` in the spec), ``what`` says what the run must
    be (for messages), ``required`` whether training needs it, and ``path`` is the run the spec
    itself names (reflow's ``previous = "runs/..."``), ``None`` for one given on the command
    line."""

    flag: str
    what: str
    required: bool
    path: str | None = None


@dataclass(frozen=True)
class Capabilities:
    """What a model can do (see the module docstring for each field)."""

    likelihood: bool = False
    dequantized_likelihood: bool = False
    elbo: bool = False
    steps: bool = False
    runs: tuple[PretrainedRun, ...] = ()
    training_step: bool = False
    param_groups: bool = False
    diagnostics: bool = False
    step_report: bool = False

    def __post_init__(self) -> None:
        if self.param_groups and not self.training_step:
            raise ValueError(
                "a model with param_groups() must define training_step(): the default step "
                "drives one optimiser"
            )
        if self.dequantized_likelihood and not self.likelihood:
            raise ValueError("dequantized_likelihood needs likelihood")

    def takes(self, flag: str) -> bool:
        """Whether the model takes the trained run ``flag`` (``--teacher``, ``--base``,
        ``previous``)."""
        return any(run.flag == flag for run in self.runs)


@runtime_checkable
class Trainable(Protocol):
    """What :func:`gendsl.train.fit` trains: a module with a loss and declared capabilities."""

    capabilities: Capabilities

    def loss(self, batch: Batch) -> Tensor: ...


class Diagnosed(Trainable, Protocol):
    """A :class:`Trainable` with ``capabilities.diagnostics``: named numbers for the logs."""

    def diagnostics(self, batch: Batch) -> Mapping[str, float | Tensor]: ...


class Reporting(Trainable, Protocol):
    """A :class:`Trainable` with ``capabilities.step_report``: after each ``loss`` call of the
    default training step, named numbers about that call (the same names every step), kept
    with the loss and averaged over each log line's window (and over the ranks)."""

    def step_report(self) -> Mapping[str, float]: ...


class SeveralPlayers(Trainable, Protocol):
    """A :class:`Trainable` with its own step (``capabilities.training_step``) and, with
    ``capabilities.param_groups``, one optimiser per group (a GAN's critic and generator).

    A group is an iterable of parameters, or a mapping with ``params`` and overrides of ``lr``,
    ``betas``, ``weight_decay``.  ``training_step`` owns ``zero_grad``, ``backward``, clipping
    and ``step`` of every optimiser and returns a mapping with a ``"loss"`` entry."""

    def param_groups(self) -> Mapping[str, Iterable[nn.Parameter] | Mapping[str, Any]]: ...

    def training_step(
        self, batch: Batch, step: int, optimizers: Mapping[str, optim.Optimizer]
    ) -> Mapping[str, Tensor | float]: ...
