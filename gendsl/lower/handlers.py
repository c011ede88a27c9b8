"""Effect handlers for the program interpreter (:mod:`gendsl.lower.interpret`).

The interpreter turns every statement it runs — a sample site ``z ~ Normal(...)`` or an
assignment ``x = G(z)`` — into a :class:`Message` and passes it through a *stack* of small
handlers, each deciding one effect: record the site (:class:`Trace`), take its value from
the data (:class:`Condition`) or from another run (:class:`Replay`), weight its log-density
(:class:`Scale`), draw it from a generator (:class:`Draw`), or hand it to Pyro
(:class:`PyroSample`).  This is the pattern of Pyro's ``poutine`` (Bingham et al. 2019,
"Pyro: Deep Universal Probabilistic Programming", JMLR 20; ``pyro.poutine.runtime.apply_stack``,
``TraceMessenger``, ``ReplayMessenger``, ``ConditionMessenger``, ``ScaleMessenger``), and
:func:`apply_stack` follows Pyro's scheme step by step.

Why not Pyro's own messengers for every run: the training losses run under ``torch.compile``
and hold a site's distribution as a :class:`~gendsl.objectives.densities.Density` (closed forms, no
``torch.distributions`` object on the hot path), while Pyro's stack is a global list of
messengers whose messages carry Pyro distributions and whose trace is a graph.  So the stack
here is an explicit list passed to each run (no global state) and the messages are small
slotted objects; where a site must become a real Pyro site — the model and guide that Pyro's
ELBOs consume — :class:`PyroSample` calls ``pyro.sample`` under ``pyro.poutine.scale``, and from
there Pyro's own poutine (plates, traces, enumeration) takes over.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pyro
import pyro.poutine as poutine
import torch

from gendsl.objectives.densities import Density, draw
from gendsl.objectives.elbo import SiteRecord

__all__ = [
    "Condition",
    "Draw",
    "Enumerate",
    "Handler",
    "Mean",
    "Message",
    "PyroSample",
    "Replay",
    "Scale",
    "Trace",
    "apply_stack",
]


@dataclass(slots=True)
class Message:
    """One statement on its way through the handlers (Pyro's ``Message``, cut down).

    :param kind: ``"sample"`` (``fn`` is the site's :class:`Density`) or ``"assign"`` (``fn``
        is the compiled right-hand side, called with ``scope``).
    :param value: set by a handler, else by the default effect (a reparameterised draw, or
        the right-hand side's value).
    :param observed: the value is data (set by :class:`Condition`).
    :param scale: the factor of the site's log-density (set by :class:`Scale`).
    :param stop: no handler outside the one that set it sees the message.
    """

    kind: str
    name: str
    fn: Any
    scope: Any = None
    value: Any = None
    observed: bool = False
    scale: float = 1.0
    infer: dict[str, Any] = field(default_factory=dict)
    stop: bool = False


class Handler:
    """A handler (Pyro's ``Messenger``): :meth:`process` before the default effect,
    :meth:`postprocess` after it; both do nothing unless overridden."""

    def process(self, msg: Message) -> None:
        """Act on ``msg`` before its value is decided."""

    def postprocess(self, msg: Message) -> None:
        """Act on ``msg`` once it has its value."""


def apply_stack(stack: Sequence[Handler], msg: Message) -> Any:
    """Run ``msg`` through ``stack`` (outermost handler first in the list) and return its value.

    As ``pyro.poutine.runtime.apply_stack``: each handler from the innermost outwards processes
    the message until one sets ``stop``; then the default effect gives a message without a
    value one (``fn.rsample()`` for a site, ``fn(scope)`` for an assignment); then the handlers
    that processed it postprocess it, from the outermost inwards.
    """
    depth = 0
    for handler in reversed(stack):
        depth += 1
        handler.process(msg)
        if msg.stop:
            break
    if msg.value is None:
        msg.value = msg.fn.rsample() if msg.kind == "sample" else msg.fn(msg.scope)
    for handler in stack[len(stack) - depth :]:
        handler.postprocess(msg)
    return msg.value


class Trace(Handler):
    """Records every sample site with its density, value and whether it was observed (Pyro's
    ``poutine.trace``)."""

    def __init__(self) -> None:
        self.records: dict[str, SiteRecord] = {}

    def postprocess(self, msg: Message) -> None:
        if msg.kind == "sample":
            self.records[msg.name] = SiteRecord(msg.fn, msg.value, msg.observed)

    def values(self) -> dict[str, Any]:
        """The recorded values by site name."""
        return {name: r.value for name, r in self.records.items()}


class Condition(Handler):
    """Sites named in ``data`` take its value and become observed; assignments named there
    take its value instead of being computed (Pyro's ``poutine.condition``)."""

    def __init__(self, data: Mapping[str, Any]):
        self.data = data

    def process(self, msg: Message) -> None:
        if msg.name in self.data:
            msg.value = self.data[msg.name]
            msg.observed = msg.kind == "sample"


class Replay(Handler):
    """Unobserved sites named in ``values`` take the value recorded there (Pyro's
    ``poutine.replay`` of a guide trace)."""

    def __init__(self, values: Mapping[str, Any]):
        self.values = values

    def process(self, msg: Message) -> None:
        if msg.kind == "sample" and not msg.observed and msg.name in self.values:
            msg.value = self.values[msg.name]


class Scale(Handler):
    """Multiplies the log-density of the sites in ``names`` by ``factor`` (Pyro's
    ``poutine.scale``, limited to the named sites)."""

    def __init__(self, factor: float, names: Collection[str]):
        self.factor, self.names = factor, names

    def process(self, msg: Message) -> None:
        if msg.kind == "sample" and msg.name in self.names:
            msg.scale = msg.scale * self.factor


class Enumerate(Handler):
    """Marks the sites in ``names`` for parallel enumeration by Pyro's ``TraceEnum_ELBO``
    (Pyro's ``infer={"enumerate": "parallel"}``)."""

    def __init__(self, names: Collection[str]):
        self.names = names

    def process(self, msg: Message) -> None:
        if msg.kind == "sample" and msg.name in self.names:
            msg.infer["enumerate"] = "parallel"


class Draw(Handler):
    """Sites without a value are drawn with :func:`~gendsl.objectives.densities.draw`, reproducibly
    from ``generator`` (from the global RNG when it is None)."""

    def __init__(self, generator: torch.Generator | None):
        self.generator = generator

    def process(self, msg: Message) -> None:
        if msg.kind == "sample" and msg.value is None:
            msg.value = draw(msg.fn.to_dist(), generator=self.generator)


class Mean(Handler):
    """Sites in ``names`` take their distribution's mean instead of a draw."""

    def __init__(self, names: Collection[str]):
        self.names = names

    def process(self, msg: Message) -> None:
        if msg.kind == "sample" and msg.name in self.names and msg.value is None:
            msg.value = msg.fn.mean


class PyroSample(Handler):
    """Every sample site becomes ``pyro.sample`` with its Pyro distribution, observed value,
    ``infer`` options and (unless 1) its scale under ``pyro.poutine.scale``: put outermost,
    it hands the program to Pyro's own handlers (plates, traces, enumeration)."""

    def process(self, msg: Message) -> None:
        if msg.kind != "sample":
            return
        density: Density = msg.fn
        kwargs: dict[str, Any] = {"obs": msg.value} if msg.observed else {}
        if msg.infer:
            kwargs["infer"] = dict(msg.infer)
        if msg.scale == 1.0:
            msg.value = pyro.sample(msg.name, density.to_dist(), **kwargs)
        else:
            with poutine.scale(scale=msg.scale):
                msg.value = pyro.sample(msg.name, density.to_dist(), **kwargs)
        msg.stop = True
