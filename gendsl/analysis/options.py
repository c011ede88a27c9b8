"""Checking a library option written in a spec against its :class:`~library.OptionSpec`.

``check_option`` binds positional and named arguments to the spec's parameters, checks every
value against its :class:`~library.Param` kind, and returns an :class:`~model.Opt` whose
``kwargs`` hold every parameter (defaults filled in, nested options normalised the same way).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from gendsl.analysis.library import NETWORKS, OptionSpec, Param
from gendsl.analysis.model import to_value
from gendsl.analysis.ranges import out_of_range
from gendsl.analysis.resolve import closest, unknown
from gendsl.frontend import ast
from gendsl.ir import Opt
from gendsl.source import Span

__all__ = ["OptionChecker", "describe"]

Report = Callable[[str, Span], None]

_ITEM_KIND = {"ints": "int", "numbers": "number", "names": "name"}
_KIND_WORDS = {
    "number": "a number",
    "int": "a whole number",
    "bool": "true or false",
    "string": "a string",
    "ints": "a list of whole numbers",
    "numbers": "a list of numbers",
    "names": "a list of variable names",
    "name": "a variable name",
    "model": "the name of a model",
    "net": "the name of a network",
    "network": "a network such as MLP(hidden = [64])",
}


def describe(e: ast.Expr) -> str:
    """A short quote of a value for messages."""
    from gendsl.frontend.printer import format_expr

    text = format_expr(e)
    return text if len(text) <= 40 else text[:37] + "..."


def _number(e: ast.Expr) -> int | float | None:
    if isinstance(e, ast.Num):
        return e.value
    if isinstance(e, ast.Neg) and isinstance(e.operand, ast.Num):
        return -e.operand.value
    return None


class OptionChecker:
    """Checks options; ``report(message, span)`` records an error.

    ``models`` and ``nets`` are the names a ``model`` or ``net`` parameter may take;
    ``variables`` those of a ``names`` parameter.
    """

    def __init__(
        self,
        report: Report,
        *,
        models: Mapping[str, Any] | None = None,
        nets: Mapping[str, Any] | None = None,
        variables: Mapping[str, Any] | None = None,
    ):
        self.report = report
        self.models = {} if models is None else models
        self.nets = {} if nets is None else nets
        self.variables = {} if variables is None else variables

    def check(
        self,
        spec: OptionSpec,
        args: tuple[ast.Expr, ...],
        kwargs: tuple[ast.KwArg, ...],
        span: Span,
        what: str,
        *,
        family: str | None = None,
    ) -> Opt:
        """Bind and check ``spec(args..., kwargs...)``; ``what`` names it in messages; the
        ranges of its numbers are those of ``family`` (:mod:`~gendsl.analysis.ranges`)."""
        values = spec.defaults()
        names = list(spec.params)
        if len(args) > spec.positional:
            extra = args[spec.positional]
            if spec.positional == 0:
                self.report(
                    f"{what} takes only named options; found {describe(extra)}"
                    + self._expected(spec),
                    extra.span,
                )
            else:
                self.report(
                    f"{what} takes at most {spec.positional} positional "
                    f"option{'s' if spec.positional > 1 else ''} "
                    f"({', '.join(names[: spec.positional])}); found {describe(extra)}",
                    extra.span,
                )
        for name, arg in zip(names, args[: spec.positional], strict=False):
            values[name] = self.value(spec.params[name], arg, f"{what}: {name}")
            self.in_range(spec.name, name, values[name], arg, f"{what}: {name}", family)
        for kw in kwargs:
            name = spec.aliases.get(kw.name, kw.name)
            param = spec.params.get(name)
            if param is None:
                head = f"unknown option '{kw.name}' of {what}"
                if not names:
                    message = f"{head}; {spec.name} takes no options"
                else:
                    message = unknown(head, kw.name, names)
                self.report(message, kw.span)
                continue
            values[name] = self.value(param, kw.value, f"{what}: {kw.name}")
            self.in_range(spec.name, name, values[name], kw.value, f"{what}: {kw.name}", family)
        return Opt(spec.name, (), values, span)

    def in_range(
        self, option: str, param: str, value: Any, e: ast.Expr, what: str, family: str | None
    ) -> None:
        """Report a number of ``option``'s ``param`` outside its range, at the number."""
        bad = out_of_range(option, param, value, family=family)
        if bad is None:
            return
        allowed, number = bad
        if isinstance(e, ast.List):
            e = next((i for i in e.items if to_value(i) == number), e)
        self.report(f"{what} must be {allowed.text()}; found {describe(e)}", e.span)

    @staticmethod
    def _expected(spec: OptionSpec) -> str:
        if not spec.params:
            return f"; {spec.name} takes no options"
        return f"; expected one of {', '.join(spec.params)}"

    def option(
        self, table: Mapping[str, OptionSpec], node: ast.Option | ast.Call | ast.Layer, what: str
    ) -> Opt | None:
        """Check an option naming one entry of ``table``; ``None`` if the name is unknown."""
        name = node.func if isinstance(node, ast.Call) else node.name
        spec = table.get(name)
        if spec is None:
            self.report(
                unknown(f"unknown {what} '{name}'", name, table),
                node.span,
            )
            return None
        return self.check(spec, node.args, node.kwargs, node.span, f"{what} {name}")

    def value(self, param: Param, e: ast.Expr, what: str) -> Any:
        """Check one value against ``param``; return it as plain Python."""
        kind = param.kind
        if kind in _ITEM_KIND and isinstance(e, ast.List):
            return [self.value(Param(_ITEM_KIND[kind]), i, what) for i in e.items]
        if kind == "bool" and isinstance(e, ast.Name) and e.id in ("true", "false"):
            return e.id == "true"
        if kind == "network" and isinstance(e, ast.Call) and e.func in NETWORKS:
            return self.check(NETWORKS[e.func], e.args, e.kwargs, e.span, e.func)
        if kind == "choice":
            return self._choice(param, e, what)
        if self._bad(kind, e, what):
            self.report(f"{what} expects {_KIND_WORDS[kind]}; found {describe(e)}", e.span)
            return None
        return to_value(e)

    def _bad(self, kind: str, e: ast.Expr, what: str) -> bool:
        """Whether ``e`` is not of ``kind`` (a name of the wrong table is reported here)."""
        if kind == "number":
            return _number(e) is None
        if kind == "int":
            n = _number(e)
            return not isinstance(n, int) or n < 0
        if kind == "string":
            return not isinstance(e, ast.Str)
        if kind in ("name", "model", "net"):
            if not isinstance(e, ast.Name):
                return True
            self._reference(kind, e, what)
            return False
        return kind in ("bool", "network", *_ITEM_KIND)

    def _reference(self, kind: str, e: ast.Name, what: str) -> None:
        """A name that must be a variable, a model in scope or a network."""
        if kind == "name":
            if e.id not in self.variables:
                self.report(
                    f"{what}: '{e.id}' is not a variable of this model"
                    + closest(e.id, self.variables),
                    e.span,
                )
            return
        table = self.models if kind == "model" else self.nets
        if e.id not in table:
            noun = "model in scope" if kind == "model" else "network"
            self.report(f"{what}: '{e.id}' is not a {noun}{closest(e.id, table)}", e.span)

    def _choice(self, param: Param, e: ast.Expr, what: str) -> Any:
        options = [*param.choices, *(c for c in param.calls if c not in param.choices)]
        if isinstance(e, ast.Name) and e.id in param.choices:
            if e.id in param.calls:
                return Opt(e.id, (), param.calls[e.id].defaults(), e.span)
            return e.id
        if isinstance(e, ast.Call) and e.func in param.calls:
            spec = param.calls[e.func]
            return self.check(spec, e.args, e.kwargs, e.span, f"{what} = {e.func}")
        name = e.id if isinstance(e, ast.Name) else e.func if isinstance(e, ast.Call) else None
        hint = closest(name, options) if name else ""
        self.report(
            f"{what} expects one of {', '.join(options)}; found {describe(e)}{hint}", e.span
        )
        return None
