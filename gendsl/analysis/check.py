"""The checker: from a parsed file to one :class:`~gendsl.analysis.model.CheckedModel` per model.

It resolves imports and ``extends``, then checks each model: names and scopes, duplicate
definitions, types, distributions and their arguments, network shapes (from how each network is
used), the model family and whether the loss, sampler, predict, coupling and guidance fit it,
every option against :mod:`gendsl.analysis.library`, and the model graph (no cycles, evaluation
order).  It collects every error of a file before raising :class:`~gendsl.errors.SpecErrors`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import networkx as nx

from gendsl.analysis import library as lib
from gendsl.analysis.graph import ROLE_KIND, find_cycle, topological
from gendsl.analysis.model import CheckedModel, NetSpec, Opt, Shape, Site, Variable, VarType
from gendsl.analysis.options import OptionChecker, describe
from gendsl.analysis.resolve import Scope, closest, load, merged_model, unknown
from gendsl.analysis.supported import family_of as _family_of
from gendsl.analysis.supported import unsupported
from gendsl.analysis.to_ir import to_ir
from gendsl.analysis.usage import one_data_variable, unused_latents
from gendsl.errors import Diagnostic, SpecError, SpecErrors, UsageError
from gendsl.frontend import ast
from gendsl.source import Span

__all__ = ["check_file", "check_text", "load_checked", "model_graph", "report"]

_FAMILY_WORDS = {
    "latent": "a latent-variable model",
    "diffusion": "a diffusion model",
    "matching": "a flow-matching model",
    "flow": "a normalizing-flow model",
    "adversarial": "an adversarial model",
    "energy": "an energy-based model",
}
_SUPPORT_WORDS = {
    "binary": ("binary values", "Bernoulli"),
    "label": ("labels", "Categorical"),
}
_PREDICT_EXAMPLE = {
    "diffusion": "predict eps = eps(x_t, t)",
    "matching": "predict velocity = v(x_t, t)",
}


def _keyword(stmt: ast.Stmt) -> str:
    return {
        ast.SDE: "sde",
        ast.Chain: "chain",
        ast.Path: "path",
        ast.Flow: "flow",
        ast.Critic: "critic",
        ast.Energy: "energy",
    }[type(stmt)]


def _where(span: Span, here: Span) -> str:
    """``line 4`` in the same file, ``file:line`` otherwise."""
    if span.file != here.file:
        return f"at {span.file}:{span.line}"
    return f"on line {span.line}" if span.line != here.line else f"at column {span.column}"


class _ModelChecker:
    """Checks one merged model; errors go to ``self.errors``."""

    def __init__(self, scope: Scope, model: ast.Model):
        self.scope = scope
        self.m = model
        self.errors: list[Diagnostic] = []
        self.defined: dict[str, tuple[str, Span]] = {}
        self.variables: dict[str, Variable] = {}
        self.shapes: dict[str, Shape] = {}
        self.lets: dict[str, ast.Let] = {}
        self.funcs: dict[str, int] = {}
        self.net_decls: dict[str, ast.Net] = {}
        self.nets: dict[str, NetSpec] = {}
        self.net_uses: dict[str, tuple[int, Span]] = {}
        self.flows: dict[str, ast.Flow] = {}
        self.sizes: dict[str, int] = {}
        self.sampled: dict[str, Span] = {}
        self.guide_sampled: dict[str, Span] = {}
        self.opts = OptionChecker(
            self.error, models=scope.models, nets=self.net_decls, variables=self.variables
        )

    # ------------------------------------------------------------------ helpers
    def error(self, message: str, span: Span) -> None:
        self.errors.append(SpecError(message, span, self.scope.sources.get(span.file)))

    def define(self, name: str, what: str, span: Span) -> bool:
        if name in lib.KEYWORDS:
            self.error(f"'{name}' is a keyword and cannot be used as a name", span)
            return False
        first = self.defined.get(name)
        if first is not None:
            self.error(
                f"'{name}' is already defined as a {first[0]} {_where(first[1], span)}", span
            )
            return False
        self.defined[name] = (what, span)
        return True

    # ------------------------------------------------------------------ types
    def size(self, e: ast.Expr) -> int | str | None:
        if isinstance(e, ast.Num) and isinstance(e.value, int) and e.value > 0:
            return e.value
        if isinstance(e, ast.Name):
            return self.sizes.get(e.id, e.id)
        self.error(
            f"a size must be a positive whole number or a name; found {describe(e)}", e.span
        )
        return None

    def vartype(self, t: ast.TypeExpr) -> VarType:
        info = lib.TYPES.get(t.kind)
        if info is None:
            self.error(
                unknown(f"unknown type '{t.kind}'", t.kind, lib.TYPES),
                t.span,
            )
            return VarType("real", ())
        sizes = tuple(self.size(a) for a in t.args)
        if t.kind == "code":
            kw = {k.name: k for k in t.kwargs}
            extra = [k for k in t.kwargs if k.name not in info.keywords]
            if t.args or extra or set(kw) != set(info.keywords):
                self.error(f"expected code[K = ..., dim = ...]; found {t.kind}[...]", t.span)
                return VarType("code", (1,), 1)
            return VarType("code", (self.size(kw["dim"].value),), self.size(kw["K"].value))
        for k in t.kwargs:
            self.error(f"{t.kind}[...] takes sizes, not named arguments; found '{k.name}'", k.span)
        if info.sizes is not None and len(t.args) != info.sizes:
            shape = {"image": "[C, H, W]", "label": "[K]"}[t.kind]
            self.error(
                f"{t.kind} needs {info.sizes} size{'s' if info.sizes > 1 else ''} {shape}; "
                f"found {len(t.args)}",
                t.span,
            )
        elif not t.args:
            self.error(f"{t.kind} needs at least one size, e.g. {t.kind}[2]", t.span)
        if t.kind == "label":
            return VarType("label", (), sizes[0] if sizes else None)
        return VarType(t.kind, tuple(s if s is not None else 1 for s in sizes))

    # ------------------------------------------------------------------ collection
    def collect(self) -> None:
        for stmt in self.m.body:
            value = stmt.value if isinstance(stmt, ast.Let) and not stmt.params else None
            if isinstance(value, ast.Num) and isinstance(value.value, int):
                self.sizes[stmt.name] = stmt.value.value
        for stmt in self.m.body:
            if isinstance(stmt, ast.Decl):
                if self.define(stmt.name, "variable", stmt.name_span):
                    vt = self.vartype(stmt.type)
                    role = stmt.role if stmt.role != "data" else "data"
                    self.variables[stmt.name] = Variable(stmt.name, role, vt, stmt.name_span)
            elif isinstance(stmt, ast.Let):
                if self.define(stmt.name, "let", stmt.name_span):
                    self.lets[stmt.name] = stmt
                    if stmt.params:
                        self.funcs[stmt.name] = len(stmt.params)
                for p in stmt.params:
                    if p in lib.KEYWORDS:
                        self.error(f"'{p}' is a keyword and cannot be used as a name", stmt.span)
            elif isinstance(stmt, ast.Net):
                if self.define(stmt.name, "network", stmt.name_span):
                    self.net_decls[stmt.name] = stmt
                ctor = stmt.constructor
                self.opts.option(lib.NETWORKS, ctor, "network")
            elif isinstance(stmt, ast.Flow):
                if self.define(stmt.name, "flow", stmt.name_span):
                    self.flows[stmt.name] = stmt
                self.layers(stmt.body)
            elif isinstance(stmt, ast.Critic) and stmt.value is not None:
                self.define(stmt.name, "critic", stmt.span)
            elif (
                isinstance(stmt, ast.Energy)
                and stmt.value is not None
                and self.define(stmt.name, "energy", stmt.span)
            ):
                self.funcs[stmt.name] = len(stmt.params)
        for stmt in self.m.body:
            if (
                isinstance(stmt, ast.Assign)
                and stmt.target not in self.variables
                and self.define(stmt.target, "variable", stmt.target_span)
            ):
                vt = VarType("real", ())
                self.variables[stmt.target] = Variable(
                    stmt.target, "derived", vt, stmt.target_span
                )
        self.processes()

    def layers(self, items: tuple[ast.FlowItem, ...]) -> None:
        for item in items:
            if isinstance(item, ast.Repeat):
                self.layers(item.body)
            else:
                self.opts.option(lib.FLOW_LAYERS, item, "flow layer")

    def data_var(self) -> Variable | None:
        return next((v for v in self.variables.values() if v.role == "data"), None)

    def processes(self) -> None:
        for stmt in self.m.body:
            if isinstance(stmt, ast.SDE):
                name = stmt.differential[1:] if stmt.differential.startswith("d") else ""
                var = self.variables.get(name)
                if var is None or var.role != "data":
                    self.error(
                        f"expected the differential of a data variable such as dx; found "
                        f"'{stmt.differential}'",
                        stmt.differential_span,
                    )
                    continue
                self.noised(var, stmt.span)
            elif isinstance(stmt, ast.Chain):
                var = self.variables.get(stmt.var)
                if var is None or var.role != "data":
                    self.error(
                        f"a chain runs over a data variable; '{stmt.var}' is not one", stmt.span
                    )
                    continue
                if stmt.range_var != stmt.index:
                    self.error(
                        f"the chain is indexed by '{stmt.index}' but its range is over "
                        f"'{stmt.range_var}'; write '{stmt.index} in ...'",
                        stmt.span,
                    )
                self.noised(var, stmt.span)
            elif isinstance(stmt, ast.Path):
                var = self.data_var()
                vt = var.type if var is not None else VarType("real", ())
                if self.define(stmt.target, "variable", stmt.span):
                    self.variables[stmt.target] = Variable(stmt.target, "noised", vt, stmt.span)
                if "w" not in self.variables:
                    self.variables["w"] = Variable("w", "noise", vt, stmt.span)

    def noised(self, var: Variable, span: Span) -> None:
        name = f"{var.name}_t"
        if self.define(name, "variable", span):
            self.variables[name] = Variable(name, "noised", var.type, span)

    # ------------------------------------------------------------------ expressions
    def in_scope(self) -> list[str]:
        return [*self.defined, *self.variables, *lib.CONSTANTS]

    def expr(self, e: ast.Expr, local: frozenset[str], ctx: str) -> None:
        """Check names and calls in ``e``; ``local`` names are bound (t, k, parameters)."""
        for node in ast.walk(e):
            if isinstance(node, ast.Name):
                self.name(node, local, ctx)
            elif isinstance(node, ast.Call):
                self.call(node, local, ctx)
            elif isinstance(node, ast.KwArg | ast.List | ast.Str | ast.Num):
                continue

    def name(self, node: ast.Name, local: frozenset[str], ctx: str) -> None:
        n = node.id
        if n in local or n in self.variables or n in self.defined or n in lib.CONSTANTS:
            if ctx != "consistency" and (
                n in self.net_decls or n in self.flows or n in self.funcs
            ):
                self.error(f"'{n}' must be called, as in {n}(...)", node.span)
            return
        if n in ("dt", "dw"):
            self.error(f"'{n}' is only defined inside an sde statement", node.span)
        elif n == "w":
            self.error(
                "'w' (standard Gaussian noise) is only defined inside a path statement", node.span
            )
        elif n == "t":
            self.error(
                "'t' (time) is only defined in sde, path and predict statements and in let "
                "functions such as let beta(t) = ...",
                node.span,
            )
        elif n in lib.KEYWORDS:
            self.error(f"'{n}' is a keyword and cannot be used as a name", node.span)
        else:
            self.error(f"undefined name '{n}'{closest(n, [*self.in_scope(), *local])}", node.span)

    def call(self, node: ast.Call, local: frozenset[str], ctx: str) -> None:
        f = node.func
        arity: int | None = None
        if f in self.net_decls:
            self.note_use(node)
            if node.kwargs:
                self.error(f"network '{f}' takes only positional inputs", node.kwargs[0].span)
            return
        if f in self.flows:
            arity = 1
        elif f in self.funcs:
            arity = self.funcs[f]
        elif f in lib.MATH_FUNCTIONS:
            arity = lib.MATH_FUNCTIONS[f]
        elif f in lib.CONSTRUCTORS:
            arity = lib.CONSTRUCTORS[f]
        elif f == "quantize":
            arity = 1
            if ctx != "quantize":
                self.error(
                    "quantize(...) must be assigned to a code latent: e = quantize(enc(x))",
                    node.span,
                )
        elif f == "consistency":
            if ctx != "consistency":
                self.error("consistency(...) is only allowed in 'predict x0 = ...'", node.span)
            return
        elif f == "d":
            arity = 1
        elif f in self.variables or f in self.defined:
            what = self.defined.get(f, ("variable",))[0]
            self.error(
                f"'{f}' is a {what}, not a network or function; only nets, flows and let "
                "functions can be called",
                node.func_span,
            )
            return
        elif f in lib.DISTRIBUTIONS:
            self.error(
                f"'{f}' is a distribution: use it after '~', as in 'z ~ {f}(...)'", node.func_span
            )
            return
        else:
            callables = [
                *self.net_decls,
                *self.flows,
                *self.funcs,
                *lib.MATH_FUNCTIONS,
                *lib.CONSTRUCTORS,
            ]
            self.error(f"undefined function '{f}'{closest(f, callables)}", node.func_span)
            return
        if node.kwargs:
            self.error(f"'{f}' takes no named arguments", node.kwargs[0].span)
        if arity is not None and len(node.args) != arity:
            self.error(
                f"'{f}' takes {arity} argument{'s' if arity != 1 else ''}; found {len(node.args)}",
                node.span,
            )

    def note_use(self, node: ast.Call) -> None:
        first = self.net_uses.get(node.func)
        if first is None:
            self.net_uses[node.func] = (len(node.args), node.span)
        elif first[0] != len(node.args):
            self.error(
                f"network '{node.func}' is called with {len(node.args)} input"
                f"{'s' if len(node.args) != 1 else ''} here but with {first[0]} "
                f"{_where(first[1], node.span)}",
                node.span,
            )

    # ------------------------------------------------------------------ statements
    def statements(self) -> None:
        time = frozenset({"t"})
        for stmt in self.m.body:
            if isinstance(stmt, ast.Let):
                self.expr(stmt.value, frozenset(stmt.params), "let")
            elif isinstance(stmt, ast.Sample):
                self.sample(stmt, self.sampled, guide=False)
            elif isinstance(stmt, ast.Assign):
                ctx = "quantize" if self.is_quantize(stmt) else "plain"
                self.expr(stmt.value, frozenset(), ctx)
                self.twice(stmt.target, stmt.target_span, self.sampled)
            elif isinstance(stmt, ast.Guide):
                for g in stmt.body:
                    if isinstance(g, ast.Sample):
                        self.sample(g, self.guide_sampled, guide=True)
                    else:
                        self.error("a guide holds only sample statements (z | x ~ ...)", g.span)
            elif isinstance(stmt, ast.SDE):
                self.expr(stmt.rhs, frozenset({stmt.time, "dt", "dw"}), "sde")
                self.expr(stmt.t0, frozenset(), "plain")
                self.expr(stmt.t1, frozenset(), "plain")
            elif isinstance(stmt, ast.Chain):
                self.dist_args(stmt.dist, frozenset({stmt.index, stmt.range_var}), "chain")
                self.expr(stmt.lo, frozenset(), "plain")
                self.expr(stmt.hi, frozenset(), "plain")
            elif isinstance(stmt, ast.Path):
                self.expr(stmt.value, time, "path")
            elif isinstance(stmt, ast.Predict):
                ctx = "consistency" if stmt.kind == "x0" else "predict"
                self.expr(stmt.value, time, ctx)
            elif isinstance(stmt, ast.Critic):
                if stmt.value is not None:
                    self.expr(stmt.value, frozenset(), "plain")
                elif stmt.name not in self.net_decls:
                    self.not_a_net(stmt.name, stmt.span, "critic")
            elif isinstance(stmt, ast.Energy):
                if stmt.value is not None:
                    self.expr(stmt.value, frozenset(stmt.params), "plain")
                else:
                    if stmt.name not in self.net_decls:
                        self.not_a_net(stmt.name, stmt.span, "energy")
                    for p in stmt.params:
                        if p not in self.variables:
                            self.error(
                                f"undefined name '{p}'{closest(p, self.variables)}", stmt.span
                            )
            elif isinstance(stmt, ast.Couple):
                for n in (stmt.left, stmt.right):
                    if n not in self.variables:
                        self.error(f"undefined name '{n}'{closest(n, self.variables)}", stmt.span)

    def dist_args(self, call: ast.Call, local: frozenset[str], ctx: str) -> None:
        for a in call.args:
            self.expr(a, local, ctx)
        for k in call.kwargs:
            self.expr(k.value, local, ctx)

    def not_a_net(self, name: str, span: Span, what: str) -> None:
        self.error(
            f"{what} {name}: expected a network declared with 'net {name} = ...'"
            f"{closest(name, self.net_decls)}",
            span,
        )

    def is_quantize(self, stmt: ast.Assign) -> bool:
        return isinstance(stmt.value, ast.Call) and stmt.value.func == "quantize"

    def twice(self, name: str, span: Span, seen: dict[str, Span]) -> bool:
        first = seen.get(name)
        if first is not None:
            self.error(
                f"'{name}' is generated twice: it is already sampled or assigned "
                f"{_where(first, span)}",
                span,
            )
            return False
        seen[name] = span
        return True

    def sample(self, stmt: ast.Sample, seen: dict[str, Span], *, guide: bool) -> None:
        var = self.variables.get(stmt.target)
        if var is None:
            self.error(
                f"'{stmt.target}' is sampled but never declared; declare it, e.g. "
                f"'latent {stmt.target} : real[8]'{closest(stmt.target, self.variables)}",
                stmt.target_span,
            )
        elif var.role not in ("data", "latent"):
            self.error(
                f"only data and latent variables can be sampled; '{stmt.target}' is a "
                f"{var.role} variable",
                stmt.target_span,
            )
        self.twice(stmt.target, stmt.target_span, seen)
        for g in stmt.given:
            if g.id not in self.variables:
                self.error(f"undefined name '{g.id}'{closest(g.id, self.variables)}", g.span)
        self.dist_args(stmt.dist, frozenset(), "plain")
        site = self.dist(stmt.dist, var, stmt)
        if site is not None:
            (self.guide_sites if guide else self.sites).append(site)

    def dist(self, call: ast.Call, var: Variable | None, stmt: ast.Sample) -> Site | None:
        info = lib.DISTRIBUTIONS.get(call.func)
        if info is None:
            self.error(
                f"unknown distribution '{call.func}'{closest(call.func, lib.DISTRIBUTIONS)}",
                call.func_span,
            )
            return None
        ok = self.fits(info, var, call)
        given = tuple(g.id for g in stmt.given)
        if (
            len(call.args) == 1
            and not call.kwargs
            and isinstance(call.args[0], ast.Call)
            and call.args[0].func not in self.not_nets()
            and len(info.params) >= 2
        ):
            if call.args[0].func not in self.net_decls:
                return None  # reported as an undefined function
            return Site(stmt.target, given, info.name, {}, call.args[0], stmt.span) if ok else None
        names = info.params or info.alternatives[:1]
        accepted = info.params or info.alternatives
        listed = ", ".join(info.params) if info.params else " | ".join(info.alternatives)
        params: dict[str, ast.Expr] = {}
        if len(call.args) > len(names):
            self.error(
                f"{info.name} takes {len(names)} parameter{'s' if len(names) > 1 else ''} "
                f"({listed}); found {len(call.args)}",
                call.args[len(names)].span,
            )
            return None
        params.update(zip(names, call.args, strict=False))
        for kw in call.kwargs:
            if kw.name not in accepted:
                self.error(
                    unknown(f"{info.name} has no parameter '{kw.name}'", kw.name, accepted),
                    kw.span,
                )
                return None
            if kw.name in params:
                self.error(f"{info.name}: parameter '{kw.name}' is given twice", kw.span)
                return None
            params[kw.name] = kw.value
        if info.alternatives:
            if len(params) != 1:
                self.error(
                    f"{info.name} needs exactly one of {listed}; found {len(params)}", call.span
                )
                return None
        else:
            missing = [p for p in info.params if p not in params]
            if missing:
                self.error(
                    f"{info.name} is missing {', '.join(missing)}; expected {listed}", call.span
                )
                return None
        for p in info.positive:
            value = params.get(p)
            negative = isinstance(value, ast.Neg) and isinstance(value.operand, ast.Num)
            if negative or (isinstance(value, ast.Num) and value.value <= 0):
                self.error(f"{p} must be > 0; found {describe(value)}", value.span)
                ok = False
        return Site(stmt.target, given, info.name, params, None, stmt.span) if ok else None

    def not_nets(self) -> set[str]:
        """Callable names that are not networks (their value is not a packed output)."""
        return {*self.flows, *self.funcs, *lib.MATH_FUNCTIONS, *lib.CONSTRUCTORS, "quantize"}

    def fits(self, info: lib.DistInfo, var: Variable | None, call: ast.Call) -> bool:
        if var is None or var.type.kind not in ("binary", "label"):
            kind = var.type.kind if var is not None else None
            binary_image = kind == "image" and info.support == "binary"  # binarised images
            if var is not None and info.support in ("binary", "label") and not binary_image:
                self.error(
                    f"{info.name} is a distribution over {_SUPPORT_WORDS[info.support][0]}; "
                    f"'{var.name}' is {var.type.kind}",
                    call.func_span,
                )
                return False
            return True
        kind = var.type.kind
        if info.support != kind:
            words, example = _SUPPORT_WORDS[kind]
            self.error(
                f"expected a distribution over {words} such as {example}; found {info.name}",
                call.func_span,
            )
            return False
        return True

    # ------------------------------------------------------------------ family
    def family(self) -> str | None:
        found: list[tuple[str, ast.Stmt]] = []
        for stmt in self.m.body:
            fam = _family_of(stmt)
            if fam is None:
                continue
            first = next((s for f, s in found if f != fam), None)
            if first is not None:
                self.error(
                    f"a model has one family: this {_keyword(stmt)} makes it "
                    f"{_FAMILY_WORDS[fam]}, but the {_keyword(first)} "
                    f"{_where(first.span, stmt.span)} makes it {_FAMILY_WORDS[_family_of(first)]}",
                    stmt.span,
                )
                return None
            same = next((s for f, s in found if type(s) is type(stmt)), None)
            if same is not None and not isinstance(stmt, ast.Flow):
                self.error(
                    f"only one {_keyword(stmt)} statement is allowed; the first is "
                    f"{_where(same.span, stmt.span)}",
                    stmt.span,
                )
            if isinstance(stmt, ast.SDE | ast.Chain) and any(
                isinstance(s, ast.SDE | ast.Chain) and type(s) is not type(stmt) for _, s in found
            ):
                self.error("a model has either an sde or a chain, not both", stmt.span)
            found.append((fam, stmt))
        return found[0][0] if found else "latent"

    def one(self, cls: type) -> Any:
        return next((s for s in self.m.body if isinstance(s, cls)), None)

    def loss(self, family: str) -> Opt | None:
        info = lib.FAMILY_INFO[family]
        stmt = self.one(ast.Loss)
        if stmt is None:
            self.error(
                f"expected a loss statement in model '{self.m.name}', e.g. loss "
                f"{info.default_loss}",
                self.m.name_span,
            )
            return None
        opt = stmt.option
        if opt.name not in info.losses:
            others = lib.family_of_loss(opt.name)
            expected = ", ".join(info.losses)
            if others:
                self.error(
                    f"loss {opt.name} does not fit {_FAMILY_WORDS[family]}; expected one of "
                    f"{expected}",
                    opt.span,
                )
            else:
                self.error(
                    unknown(f"unknown loss '{opt.name}'", opt.name, info.losses),
                    opt.span,
                )
            return None
        return self.opts.check(
            info.losses[opt.name], opt.args, opt.kwargs, opt.span, f"loss {opt.name}"
        )

    def sampler(self, family: str) -> Opt:
        info = lib.FAMILY_INFO[family]
        stmt = self.one(ast.SamplerDecl)
        if stmt is None:
            name = info.default_sampler
            return Opt(name, (), info.samplers[name].defaults())
        opt = stmt.option
        if opt.name not in info.samplers:
            self.error(
                unknown(
                    f"unknown sampler '{opt.name}' for {_FAMILY_WORDS[family]}",
                    opt.name,
                    info.samplers,
                ),
                opt.span,
            )
            return Opt(opt.name, (), {}, opt.span)
        return self.opts.check(
            info.samplers[opt.name],
            opt.args,
            opt.kwargs,
            opt.span,
            f"sampler {opt.name}",
            family=family,
        )

    def train(self) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for stmt in self.m.body:
            if not isinstance(stmt, ast.Train):
                continue
            for kw in stmt.items:
                param = lib.TRAIN.get(kw.name)
                if param is None:
                    self.error(
                        unknown(f"unknown train key '{kw.name}'", kw.name, lib.TRAIN),
                        kw.span,
                    )
                    continue
                values[kw.name] = self.opts.value(param, kw.value, f"train {kw.name}")
                self.opts.in_range(
                    "train", kw.name, values[kw.name], kw.value, f"train {kw.name}", None
                )
        return values

    def family_rules(self, family: str, loss: Opt | None) -> None:
        predict = self.one(ast.Predict)
        if family in _PREDICT_EXAMPLE:
            if predict is None:
                self.error(
                    f"{_FAMILY_WORDS[family]} needs a predict statement, e.g. "
                    f"'{_PREDICT_EXAMPLE[family]}'",
                    self.m.name_span,
                )
            else:
                self.predict(predict, family)
        elif predict is not None:
            self.error(f"predict has no meaning in {_FAMILY_WORDS[family]}", predict.span)
        couple = self.one(ast.Couple)
        if couple is not None:
            if family != "matching":
                self.error(f"couple has no meaning in {_FAMILY_WORDS[family]}", couple.span)
            else:
                self.opts.option(lib.COUPLINGS, couple.coupling, "coupling")
        if loss is not None:
            self.loss_rules(loss)
        if family in ("latent", "flow", "adversarial"):
            for v in self.variables.values():
                if v.role == "data" and v.name not in self.sampled:
                    self.error(
                        f"data '{v.name}' is never generated: sample it ('{v.name} | z ~ ...') "
                        f"or assign it ('{v.name} = G(z)')",
                        v.span,
                    )
        for v in self.variables.values():
            if v.role == "latent" and v.name not in self.sampled:
                self.error(
                    f"latent '{v.name}' is never sampled: add e.g. '{v.name} ~ Normal(0, 1)'",
                    v.span,
                )
        for stmt in self.m.body:
            if isinstance(stmt, ast.Assign) and self.is_quantize(stmt):
                var = self.variables.get(stmt.target)
                if var is None or var.type.kind != "code":
                    self.error(
                        f"quantize(...) must be assigned to a code latent; '{stmt.target}' is "
                        "not one (declare 'latent e : code[K = 64, dim = 16]')",
                        stmt.span,
                    )
        self.guidance()

    def loss_rules(self, loss: Opt) -> None:
        if loss.name == "ddpm" and not isinstance(self.one(ast.Chain), ast.Chain):
            self.error("loss ddpm (L_simple) needs a chain; this model has an sde", loss.span)
        if loss.name in ("elbo", "iwae"):
            self.needs_guide(loss)
        if loss.name == "vq":
            code = any(v.type.kind == "code" for v in self.variables.values())
            quant = any(isinstance(s, ast.Assign) and self.is_quantize(s) for s in self.m.body)
            if not (code and quant):
                self.error(
                    "loss vq needs a code latent assigned by quantize, e.g. 'latent e : "
                    "code[K = 64, dim = 16]' and 'e = quantize(enc(x))'",
                    loss.span,
                )

    def needs_guide(self, loss: Opt) -> None:
        enumerated = set(loss.kwargs.get("enumerate") or [])
        for v in self.variables.values():
            if v.role != "latent" or v.name in enumerated or v.name not in self.sampled:
                continue
            if v.name not in self.guide_sampled:
                self.error(
                    f"loss {loss.name} needs a guide for latent '{v.name}': add "
                    f"'guide {{ {v.name} | x ~ Normal(enc(x)) }}' or enumerate = [{v.name}]",
                    loss.span or self.m.name_span,
                )

    def predict(self, stmt: ast.Predict, family: str) -> None:
        info = lib.FAMILY_INFO[family]
        if stmt.kind not in info.predicts:
            self.error(
                unknown(
                    f"unknown prediction '{stmt.kind}' for {_FAMILY_WORDS[family]}",
                    stmt.kind,
                    info.predicts,
                ),
                stmt.kind_span,
            )
        call = stmt.value
        if isinstance(call, ast.Call) and call.func == "consistency":
            if stmt.kind != "x0":
                self.error("consistency(...) is only allowed in 'predict x0 = ...'", call.span)
            if not call.args or not isinstance(call.args[0], ast.Name):
                self.error("expected consistency(f, sigma_data = 0.5) with f a network", call.span)
                return
            self.opts.check(
                lib.SPECIAL_FUNCTIONS["consistency"], (), call.kwargs, call.span, "consistency"
            )
            name = call.args[0]
            if name.id not in self.net_decls:
                self.not_a_net(name.id, name.span, "consistency")
            return
        if not (isinstance(call, ast.Call) and call.func in self.net_decls):
            self.error(
                f"predict expects a network call such as eps(x_t, t); found {describe(call)}",
                call.span,
            )
            return
        names = [a.id for a in call.args if isinstance(a, ast.Name)]
        if "t" not in names:
            self.error("the network in predict must take the time t", call.span)
        if not any(
            self.variables.get(n, None) and self.variables[n].role == "noised" for n in names
        ):
            noised = next((v.name for v in self.variables.values() if v.role == "noised"), "x_t")
            self.error(f"the network in predict must take the noised variable {noised}", call.span)

    def guidance(self) -> None:
        stmt = self.one(ast.Guidance)
        if stmt is None:
            return
        opt = self.opts.option(lib.GUIDANCE, stmt.option, "guidance")
        if opt is None:
            return
        labels = [
            v for v in self.variables.values() if v.role == "condition" and v.type.kind == "label"
        ]
        predict = self.one(ast.Predict)
        args = set()
        if predict is not None and isinstance(predict.value, ast.Call):
            args = {a.id for a in predict.value.args if isinstance(a, ast.Name)}
        if opt.name == "classifier_free" and not any(v.name in args for v in labels):
            self.error(
                "guidance classifier_free needs a label condition given to the predict network, "
                "e.g. 'condition y : label[10]' and 'predict eps = eps(x_t, t, y)'",
                stmt.span,
            )
        if opt.name == "classifier" and not labels:
            self.error(
                "guidance classifier needs a label condition, e.g. 'condition y : label[10]'",
                stmt.span,
            )
        if opt.name == "control" and not self.condition_vars():
            self.error(
                "guidance control needs a condition, e.g. 'condition c : image[1, 8, 8]'",
                stmt.span,
            )

    def condition_vars(self) -> list[Variable]:
        return [v for v in self.variables.values() if v.role == "condition"]

    # ------------------------------------------------------------------ shapes
    def shape_of(self, e: ast.Expr) -> Shape | None:
        if isinstance(e, ast.Num | ast.Index):
            return ()
        if isinstance(e, ast.Name):
            var = self.variables.get(e.id)
            if var is not None:
                return self.shapes.get(e.id, var.type.shape)
            return () if e.id in self.lets or e.id in lib.CONSTANTS or e.id == "t" else None
        if isinstance(e, ast.Call):
            if e.func in self.net_decls:
                spec = self.nets.get(e.func)
                return spec.out_shape if spec is not None else None
            return self.shape_of(e.args[0]) if e.args else ()
        if isinstance(e, ast.Neg):
            return self.shape_of(e.operand)
        if isinstance(e, ast.BinOp):
            left, right = self.shape_of(e.left), self.shape_of(e.right)
            if left is None or right is None:
                return None
            return left if len(left) >= len(right) else right
        return None

    def use_net(self, call: ast.Call, out: Shape | None) -> None:
        if call.func not in self.net_decls:
            return
        time = False
        classes: int | str | None = None
        in_shapes: list[Shape] = []
        for arg in call.args:
            var = self.variables.get(arg.id) if isinstance(arg, ast.Name) else None
            if isinstance(arg, ast.Name) and arg.id == "t" and var is None:
                time = True
            elif var is not None and var.type.kind == "label":
                classes = var.type.classes
            else:
                shape = self.shape_of(arg)
                if shape is None:
                    self.error(
                        f"cannot infer the shape of '{describe(arg)}': declare it with a type, "
                        "e.g. 'latent h : real[8]'",
                        arg.span,
                    )
                    shape = ()
                in_shapes.append(shape)
        first = self.nets.get(call.func)
        if first is not None:
            if len(first.inputs) != len(call.args):
                return  # reported by note_use
            if first.in_shapes != tuple(in_shapes) or (out is not None and out != first.out_shape):
                self.error(
                    f"network '{call.func}' is used with input shapes {_shapes(in_shapes)} "
                    f"and output shape {_shape(out)} here, but with {_shapes(first.in_shapes)} "
                    f"and {_shape(first.out_shape)} {_where(first.span, call.span)}",
                    call.span,
                )
            return
        if out is None:
            self.error(
                f"cannot infer the output shape of network '{call.func}': use it where its "
                "shape is known, e.g. as a distribution parameter or assigned to a declared "
                "variable",
                call.span,
            )
            return
        decl = self.net_decls[call.func]
        options = {k.name: _plain(k.value) for k in decl.constructor.kwargs}
        self.nets[call.func] = NetSpec(
            call.func,
            decl.constructor.func,
            options,
            tuple(describe(a) for a in call.args),
            tuple(in_shapes),
            out,
            time,
            classes,
            call.span,
        )

    def site_shapes(self, site: Site) -> None:
        var = self.variables.get(site.name)
        if var is None:
            return
        target = (var.type.classes,) if var.type.kind == "label" else var.type.shape
        if site.packed is not None:
            n = lib.DISTRIBUTIONS[site.dist].n_params()
            self.use_net(site.packed, (n, *target))
            return
        for value in site.params.values():
            self.expr_nets(value, target)

    def expr_nets(self, e: ast.Expr, out: Shape | None) -> None:
        """Register every network call in ``e``; calls at the top of an element-wise expression
        produce ``out``; calls nested in other calls have their shape inferred elsewhere."""
        if isinstance(e, ast.Call) and e.func in self.net_decls:
            for a in e.args:
                self.expr_nets(a, None)
            self.use_net(e, out)
        elif isinstance(e, ast.BinOp):
            self.expr_nets(e.left, out)
            self.expr_nets(e.right, out)
        elif isinstance(e, ast.Neg):
            self.expr_nets(e.operand, out)
        elif isinstance(e, ast.Call) and e.func in lib.MATH_FUNCTIONS:
            for a in e.args:
                self.expr_nets(a, out)

    def infer_nets(self) -> None:
        data = self.data_var()
        data_shape = data.type.shape if data is not None else ()
        sites = {s.span: s for s in self.sites}
        quantized = [s for s in self.m.body if isinstance(s, ast.Assign) and self.is_quantize(s)]
        for stmt in [*quantized, *(s for s in self.m.body if s not in quantized)]:
            if isinstance(stmt, ast.Sample) and stmt.span in sites:
                self.site_shapes(sites[stmt.span])
            elif isinstance(stmt, ast.Assign):
                self.assign_shapes(stmt)
            elif isinstance(stmt, ast.Predict) and isinstance(stmt.value, ast.Call):
                call = stmt.value
                if call.func == "consistency" and call.args:
                    inner = call.args[0]
                    noised = ast.Name(f"{data.name}_t" if data else "x_t", call.span)
                    if isinstance(inner, ast.Name):
                        call = ast.Call(inner.id, (noised, ast.Name("t")), (), call.span)
                self.use_net(call, data_shape)
            elif isinstance(stmt, ast.Critic | ast.Energy):
                if stmt.value is not None:
                    self.expr_nets(stmt.value, ())
                elif stmt.name in self.net_decls:
                    params = (
                        stmt.params
                        if isinstance(stmt, ast.Energy)
                        else ((data.name,) if data else ())
                    )
                    args = tuple(ast.Name(p, stmt.span) for p in params)
                    self.use_net(ast.Call(stmt.name, args, (), stmt.span), ())
            elif isinstance(stmt, ast.Guide):
                for site in self.guide_sites:
                    self.site_shapes(site)
            elif isinstance(stmt, ast.Guidance) and stmt.option.name == "classifier":
                clf = stmt.option.args[0] if stmt.option.args else None
                labels = [v for v in self.condition_vars() if v.type.kind == "label"]
                if isinstance(clf, ast.Name) and labels and data is not None:
                    args = (ast.Name(f"{data.name}_t", stmt.span), ast.Name("t", stmt.span))
                    self.use_net(ast.Call(clf.id, args, (), stmt.span), (labels[0].type.classes,))

    def assign_shapes(self, stmt: ast.Assign) -> None:
        var = self.variables.get(stmt.target)
        value = stmt.value
        if var is not None and var.type.kind == "code" and self.is_quantize(stmt):
            inner = value.args[0] if value.args else None
            if isinstance(inner, ast.Call) and inner.func in self.net_decls:
                dim = var.type.shape
                src = self.shape_of(inner.args[0]) if inner.args else None
                conv = self.net_decls[inner.func].constructor.func in ("ConvNet", "UNet")
                out = (*dim, *src[1:]) if conv and src is not None and len(src) == 3 else dim
                self.use_net(inner, out)
                self.shapes[stmt.target] = out
            return
        declared = var is not None and var.role != "derived"
        out = var.type.shape if declared else None
        self.expr_nets(value, out)
        if not declared and var is not None:
            shape = self.shape_of(value)
            if shape is not None:
                self.shapes[stmt.target] = shape

    # ------------------------------------------------------------------ graph
    def refs(self, e: ast.Node, graph: nx.DiGraph) -> list[str]:
        out: list[str] = []
        for node in ast.walk(e):
            name = node.id if isinstance(node, ast.Name) else None
            name = node.func if isinstance(node, ast.Call) else name
            if name is not None and name in graph and name not in out:
                out.append(name)
        return out

    def graph(self) -> nx.DiGraph:
        g = nx.DiGraph()
        for v in self.variables.values():
            g.add_node(v.name, kind=ROLE_KIND[v.role])
        for n in self.net_decls:
            g.add_node(n, kind="net")
        for n in self.flows:
            g.add_node(n, kind="flow")
        g.add_node("loss", kind="loss")

        def edge(u: str, v: str, i: int, span: Span, guide: bool = False) -> None:
            if u == v and guide:
                return
            if g.has_edge(u, v) and guide != g.edges[u, v]["guide"]:
                # the same pair in the model and in the guide: keep the generative edge
                g.edges[u, v]["guide"] = False
                g.edges[u, v]["in_guide"] = True
                if not guide:
                    g.edges[u, v].update(stmt=i, span=span)
                return
            g.add_edge(u, v, stmt=i, span=span, guide=guide, in_guide=guide)

        for i, stmt in enumerate(self.m.body):
            if isinstance(stmt, ast.Sample):
                for p in [*(x.id for x in stmt.given), *self.refs(stmt.dist, g)]:
                    edge(p, stmt.target, i, stmt.span)
            elif isinstance(stmt, ast.Guide):
                for s in stmt.body:
                    if isinstance(s, ast.Sample):
                        for p in [*(x.id for x in s.given), *self.refs(s.dist, g)]:
                            edge(p, s.target, i, s.span, guide=True)
            elif isinstance(stmt, ast.Assign):
                encoder = self.is_quantize(stmt)  # e = quantize(enc(x)) infers e from x
                for p in self.refs(stmt.value, g):
                    edge(p, stmt.target, i, stmt.span, guide=encoder)
            elif isinstance(stmt, ast.SDE | ast.Chain):
                data = stmt.var if isinstance(stmt, ast.Chain) else stmt.differential[1:]
                key = _keyword(stmt)
                g.add_node(key, kind="process")
                if data in g and f"{data}_t" in g:
                    edge(data, key, i, stmt.span)
                    edge(key, f"{data}_t", i, stmt.span)
            elif isinstance(stmt, ast.Path):
                g.add_node("path", kind="process")
                for p in self.refs(stmt.value, g):
                    if p != stmt.target:
                        edge(p, "path", i, stmt.span)
                if stmt.target in g:
                    edge("path", stmt.target, i, stmt.span)
            elif isinstance(stmt, ast.Predict):
                g.add_node("predict", kind="predict")
                g.add_node("t", kind="time")
                for p in self.refs(stmt.value, g):
                    edge(p, "predict", i, stmt.span)
                edge("predict", "loss", i, stmt.span)
            elif isinstance(stmt, ast.Critic | ast.Energy):
                sources = [stmt.name] if stmt.value is None else self.refs(stmt.value, g)
                for p in sources:
                    if p in g:
                        edge(p, "loss", i, stmt.span)
        if "t" in g and not g.in_degree("t") and not g.out_degree("t"):
            g.remove_node("t")
        if not g.in_degree("loss"):  # a likelihood-type loss scores the observed variables
            for v in self.variables.values():
                if v.role == "data":
                    g.add_edge(v.name, "loss", stmt=None, span=v.span, guide=False, in_guide=False)
        return g

    # ------------------------------------------------------------------ run
    def run(self) -> CheckedModel | None:
        self.sites: list[Site] = []
        self.guide_sites: list[Site] = []
        self.collect()
        self.statements()
        family = self.family()
        train = self.train()
        loss = sampler = None
        if family is not None:
            loss = self.loss(family)
            sampler = self.sampler(family)
            self.family_rules(family, loss)
        self.infer_nets()
        graph = self.graph()
        unused_latents(self.variables, self.sampled, graph, self.error)
        if family is not None:
            one_data_variable(self.variables, family, _FAMILY_WORDS[family], self.error)
        cycle = find_cycle(graph)
        if cycle is not None:
            names, span = cycle
            self.error(f"cycle in the model: {' -> '.join(names)}", span)
        if self.errors or family is None or loss is None or sampler is None:
            return None
        return to_ir(self._model(family, loss, sampler, train, graph))

    def _model(self, family: str, loss: Opt, sampler: Opt, train: dict, graph) -> CheckedModel:
        variables = {
            n: Variable(
                v.name, v.role, VarType(v.type.kind, self.shapes[n], v.type.classes), v.span
            )
            if v.role == "derived" and n in self.shapes
            else v
            for n, v in self.variables.items()
        }
        targets = [s.name for s in self.sites]
        assigns = [s for s in self.m.body if isinstance(s, ast.Assign)]
        order = topological(graph, [*targets, *(a.target for a in assigns)], guide=False)
        by_name = {s.name: s for s in self.sites}
        by_assign = {a.target: a for a in assigns}
        guide_order = topological(graph, [s.name for s in self.guide_sites], guide=True)
        guide_by = {s.name: s for s in self.guide_sites}
        process = self.one(ast.SDE) or self.one(ast.Chain)
        return CheckedModel(
            name=self.m.name,
            family=family,
            source=self.scope.sources[self.m.name_span.file],
            ast=self.m,
            variables=variables,
            lets=dict(self.lets),
            nets=dict(self.nets),
            sites=tuple(by_name[n] for n in order if n in by_name),
            guide=tuple(guide_by[n] for n in guide_order),
            assigns=tuple(by_assign[n] for n in order if n in by_assign),
            flows=dict(self.flows),
            process=process,
            path=self.one(ast.Path),
            couple=self.one(ast.Couple),
            predict=self.one(ast.Predict),
            critic=self.one(ast.Critic),
            energy=self.one(ast.Energy),
            guidance=self.one(ast.Guidance),
            loss=loss,
            sampler=sampler,
            train=train,
            sizes=dict(self.sizes),
            graph=graph,
            conditional=any(v.role == "condition" for v in variables.values()),
            base=self.m.base,
        )


def _shape(shape: Shape | None) -> str:
    if shape is None:
        return "(unknown)"
    return "(" + ", ".join(str(s) for s in shape) + ("," if len(shape) == 1 else "") + ")"


def _shapes(shapes: Any) -> str:
    return "[" + ", ".join(_shape(s) for s in shapes) + "]"


def _plain(e: ast.Expr) -> Any:
    from gendsl.analysis.model import to_value

    try:
        return to_value(e)
    except TypeError:
        return describe(e)


# ---------------------------------------------------------------------------------- entry points


def _validate(model: CheckedModel) -> list[Diagnostic]:
    """The symbolic core's checks (SDE affinity, chain form, path) of a model.

    Imported here, not at the top, so that checking a model without a process never loads
    sympy.
    """
    from gendsl.symbolic import validate

    return list(validate(model))


def _check_scope(scope: Scope) -> list[CheckedModel]:
    errors = list(scope.errors)
    if not scope.program.models:
        span = Span.point(scope.main.name, 1, 1)
        errors.append(
            SpecError(
                "the file declares no model; expected 'model NAME { ... }'", span, scope.main
            )
        )
    checked: list[CheckedModel] = []
    for model in scope.program.models:
        if scope.models.get(model.name) is not model:
            continue
        merged = merged_model(scope, model)
        if merged is None:
            errors.extend(e for e in scope.errors if e not in errors)
            continue
        checker = _ModelChecker(scope, merged)
        result = checker.run()
        errors.extend(e for e in scope.errors if e not in errors)
        errors.extend(checker.errors)
        if result is not None:
            problems = unsupported(result, scope) or _validate(result)
            errors.extend(problems)
            if not problems:
                checked.append(result)
    unique: list[Diagnostic] = []
    seen: set[str] = set()
    for e in errors:
        text = e.render()
        if text not in seen:
            seen.add(text)
            unique.append(e)
    if unique:
        raise SpecErrors(unique)
    return checked


def check_text(
    text: str | bytes, name: str = "<string>", *, search_dir: str | Path | None = None
) -> list[CheckedModel]:
    """Check a whole spec given as text; one :class:`CheckedModel` per model, in file order.

    Imports are resolved relative to ``search_dir`` (default: the folder of ``name`` if it names
    a file, else the current folder), then in the standard library.

    :raises SpecSyntaxError: the text does not parse.
    :raises SpecErrors: every error found in the file.
    """
    folder = Path(search_dir) if search_dir is not None else Path(name).parent
    return _check_scope(load(text, name, folder))


def check_file(path: str | Path) -> list[CheckedModel]:
    """Check the spec file at ``path`` (reported under the path as given)."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise UsageError(f"no such file: {path.as_posix()}") from None
    except IsADirectoryError:
        raise UsageError(f"{path.as_posix()} is a folder, expected a .gen file") from None
    except OSError as err:
        raise UsageError(f"cannot read {path.as_posix()}: {err.strerror}") from None
    return check_text(raw, path.as_posix(), search_dir=path.parent)


def load_checked(path_or_text: str | Path, model: str | None = None) -> CheckedModel:
    """The checked model named ``model`` (default: the file's last) of a path or a spec text."""
    is_path = isinstance(path_or_text, Path) or (
        "{" not in path_or_text and "\n" not in path_or_text
    )
    models = check_file(path_or_text) if is_path else check_text(path_or_text)
    if model is None:
        return models[-1]
    for m in models:
        if m.name == model:
            return m
    names = [m.name for m in models]
    raise SpecErrors(
        [
            SpecError(
                f"no model named '{model}'{closest(model, names)}; the file defines "
                f"{', '.join(names)}",
                None,
                models[0].source,
            )
        ]
    )


def model_graph(model: CheckedModel) -> nx.DiGraph:
    """The model graph (see :mod:`gendsl.analysis.graph`)."""
    return model.graph


def report(errors: BaseException | list[Diagnostic]) -> str:
    """The text a command-line tool prints for an error: every diagnostic, one after another."""
    if isinstance(errors, SpecErrors):
        items: list[Any] = errors.errors
    elif isinstance(errors, list):
        items = errors
    else:
        items = [errors]
    return "\n".join(e.render() if isinstance(e, Diagnostic) else str(e) for e in items) + "\n"
