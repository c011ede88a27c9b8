"""The program interpreter: the generative statements of a spec, run under effect handlers.

Every family that draws from its spec's statements — the latent family's model and guide, the
adversarial generator, a flow's base, a matching model's source, an energy's expression scope —
runs them here.  A :class:`Program` compiles a checked model's statements once: each sample
site into a :class:`SitePlan` (parameter closures, event shape, classes, the split of a packed
network output), each assignment and each ``let`` into a closure.  :meth:`Program.run` then
walks the sites in order and hands each one, as a :class:`~gendsl.lower.handlers.Message`, to
a stack of handlers (:mod:`gendsl.lower.handlers`) that decides its value; assignments are
evaluated when first needed and go through the same stack.  What a family does with a program
is its choice of handlers:

* latent training: ``[Trace, Condition(data)]`` over the guide, then
  ``[Trace, Replay(guide values), Condition(data)]`` over the model — the two traces give the
  ELBO (:mod:`gendsl.objectives.elbo`);
* latent Pyro programs: ``[PyroSample, Scale(β, latents), Enumerate(...), Condition(data)]``
  inside ``pyro.plate`` — the model and guide Pyro's ELBOs consume;
* sampling: ``[Draw(generator)]`` (with ``Mean(data)`` for means); a GAN's generator in
  training runs with no handler at all (reparameterised draws).

``let`` constants and functions that mention only other lets, sizes and the library are
evaluated once per device and dtype; a ``let`` that mentions a variable, a network or an
assigned name is evaluated in each run's scope, like an assignment.

This module is the only part of the back ends' statement handling that reads the checked
model's syntax nodes (``Site`` expressions, ``ir.Let``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import torch

from gendsl import ir
from gendsl.errors import UsageError
from gendsl.ir import CheckedModel, Site
from gendsl.lower.expr import Compiled, Scope, compile_expr, evaluate, let_function
from gendsl.lower.handlers import Handler, Message, apply_stack
from gendsl.objectives.densities import Density, unpacker

if TYPE_CHECKING:
    from gendsl.lower.base import Model

__all__ = ["Program", "SitePlan", "names_in", "scoped_lets"]


def names_in(e: ir.Expr) -> set[str]:
    """Every name an expression mentions (variables and called functions)."""
    if isinstance(e, ir.Name):
        return {e.id}
    if isinstance(e, ir.Call):
        return {e.func}.union(
            *(names_in(a) for a in e.args), *(names_in(k.value) for k in e.kwargs)
        )
    if isinstance(e, ir.BinOp):
        return names_in(e.left) | names_in(e.right)
    if isinstance(e, ir.Neg):
        return names_in(e.operand)
    if isinstance(e, ir.List):
        return set().union(*(names_in(i) for i in e.items))
    if isinstance(e, ir.Index):
        return names_in(e.base) | names_in(e.index)
    if isinstance(e, ir.Quantize):
        return {"quantize"} | names_in(e.operand)
    if isinstance(e, ir.Derivative):
        return names_in(e.operand)
    return set()


def scoped_lets(checked: CheckedModel) -> set[str]:
    """The lets that mention, directly or through other lets, a variable, a network, a flow
    or an assigned name (their parameters aside): these are evaluated in each run's scope."""
    moving = set(checked.variables) | set(checked.nets) | set(checked.flows)
    moving |= {a.target for a in checked.assigns}
    mentions = {n: names_in(let.value) - set(let.params) for n, let in checked.lets.items()}
    scoped: set[str] = set()
    while True:
        more = {n for n, names in mentions.items() if names & (moving | scoped)} - scoped
        if not more:
            return scoped
        scoped |= more


class SitePlan:
    """A sample site compiled once: its parameter expressions as closures, its event shape and
    classes bound, and (for ``Normal(enc(x))``) the split of the network output decided."""

    def __init__(self, site: Site, event: tuple[int, ...], classes: int | None):
        self.site, self.name, self.event, self.classes = site, site.name, event, classes
        self.params: Compiled
        if site.packed is not None:
            out = compile_expr(site.packed)
            split = unpacker(site.dist, event if classes is None else (classes,))
            self.params = lambda scope: split(out(scope))
        elif all(isinstance(v, ir.Num) for v in site.params.values()):  # Normal(0, 1)
            numbers = MappingProxyType({k: v.value for k, v in site.params.items()})
            self.params = lambda scope: numbers
        else:
            items = [(k, compile_expr(v)) for k, v in site.params.items()]
            self.params = lambda scope: {k: f(scope) for k, f in items}

    def density(self, scope: Scope, batch: tuple[int, ...]) -> Density:
        """The site's distribution given the values in ``scope``."""
        return Density(
            self.site.dist,
            self.params(scope),
            batch=batch,
            event=self.event,
            like=scope.like,
            classes=self.classes,
        )


def _through(handlers: Sequence[Handler], kind: str, name: str, fn: Compiled) -> Compiled:
    """``fn`` evaluated as a message of ``kind`` through ``handlers``."""
    return lambda scope: apply_stack(handlers, Message(kind, name, fn, scope))


class Program:
    """A checked model's sample sites, assignments and lets, compiled once.

    :param model: the compiled model (its sizes, shapes, classes and device).
    :param values: names every run sees besides sizes and lets (networks, or the callables
        that stand for them).
    :param packed: whether sites may take every parameter from one network call
        (``Normal(enc(x))``); families that need explicit parameters pass False.
    """

    def __init__(
        self, model: Model, *, values: Mapping[str, Any] | None = None, packed: bool = True
    ):
        c = model.checked
        if not packed:
            _refuse_packed(c)
        self.model = model
        self.values: dict[str, Any] = dict(values or {})

        def plan(site: Site) -> SitePlan:
            classes = model.classes_of(site.name) if site.dist == "Categorical" else None
            return SitePlan(site, model.shape_of(site.name), classes)

        self.sites = [plan(s) for s in c.sites]
        self.guide = [plan(s) for s in c.guide]
        self._by_name = {p.name: p for p in self.sites}
        scoped = scoped_lets(c)
        #: name -> (message kind, closure) of what each run's scope derives on first use
        self.derived: dict[str, tuple[str, Compiled]] = {
            a.target: ("assign", compile_expr(a.value)) for a in c.assigns
        }
        for name, let in c.lets.items():
            if name in scoped and not let.params:
                self.derived[name] = ("let", compile_expr(let.value))
        self._plain = {name: fn for name, (_, fn) in self.derived.items()}
        self._functions = [let for n, let in c.lets.items() if n in scoped and let.params]
        self._constants = [let for n, let in c.lets.items() if n not in scoped]
        self._lets: dict[tuple[torch.device, torch.dtype], Scope] = {}
        #: The model's ``like`` of the last call of :meth:`lets` and its scope.
        self._last: tuple[torch.Tensor, Scope] | None = None

    def bind(self, name: str, fn: Compiled) -> None:
        """Derive the assigned ``name`` by ``fn`` instead of its expression (a back end's own
        evaluation of it, e.g. one codebook per quantised code)."""
        self.derived[name] = ("assign", fn)
        self._plain[name] = fn

    def lets(self) -> Scope:
        """The scope of the sizes and of the lets that mention no variable, on the model's
        device and dtype (evaluated once per device and dtype)."""
        like = self.model.like
        if self._last is not None and self._last[0] is like:  # the model has not moved
            return self._last[1]
        key = (like.device, like.dtype)
        base = self._lets.get(key)
        if base is None:
            base = Scope(dict(self.model.sizes), like=like)
            for let in self._constants:
                base[let.name] = (
                    let_function(let, base) if let.params else evaluate(let.value, base)
                )
            self._lets[key] = base
        self._last = (like, base)
        return base

    def scope(
        self, values: Mapping[str, Any] | None = None, handlers: Sequence[Handler] = ()
    ) -> Scope:
        """A fresh scope: ``values`` over the program's values and the lets; assignments and
        variable-dependent lets are derived on first use through ``handlers``."""
        derived = self._plain
        if handlers:
            derived = {n: _through(handlers, k, n, fn) for n, (k, fn) in self.derived.items()}
        scope = Scope(
            {**self.values, **values} if values else dict(self.values),
            like=self.model.like,
            derived=derived,
            parent=self.lets(),
        )
        for let in self._functions:
            scope[let.name] = let_function(let, scope)
        return scope

    def run(
        self,
        handlers: Sequence[Handler] = (),
        *,
        batch: tuple[int, ...],
        values: Mapping[str, Any] | None = None,
        guide: bool = False,
        scope: Scope | None = None,
    ) -> Scope:
        """Run the model's (or the guide's) sample sites in order under ``handlers``, binding
        each site's value in ``scope`` (a fresh :meth:`scope` of ``values`` when None); the
        scope afterwards."""
        if scope is None:
            scope = self.scope(values, handlers)
        for site in self.guide if guide else self.sites:
            density = site.density(scope, batch)
            if not handlers:  # the default effect, without a message
                scope[site.name] = density.rsample()
                continue
            scope[site.name] = apply_stack(handlers, Message("sample", site.name, density, scope))
        return scope

    def density(self, name: str, batch: tuple[int, ...], scope: Scope | None = None) -> Density:
        """The distribution of the model's site ``name`` in ``scope`` (a fresh one when None)."""
        return self._by_name[name].density(self.scope() if scope is None else scope, batch)

    def params(self, name: str) -> dict[str, Any]:
        """The parameter values of the model's site ``name`` in a fresh scope."""
        return self._by_name[name].params(self.scope())


def _refuse_packed(checked: CheckedModel) -> None:
    for site in checked.sites:
        if site.packed is not None:
            raise UsageError(
                f"the {checked.family} family takes explicit distribution parameters; "
                f"{site.name} ~ {site.dist}({site.packed.func}(...)) is packed"
            )
