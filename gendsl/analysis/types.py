"""The types pass: every expression and statement against the names the scope pass found.

Names must be defined where they are used (``t`` only in time-dependent statements, ``dt``/``dw``
only in an ``sde``, ``w`` only in a ``path``); calls must call something callable with the right
number of arguments, and a network with as many inputs everywhere; a sampled variable must be a
declared data or latent variable, generated once, from a known distribution with fitting
parameters and support.  It fills :attr:`Context.sites` and :attr:`~Context.guide_sites`
(one :class:`Site` per ``~``), :attr:`~Context.sampled`, :attr:`~Context.guide_sampled` and
:attr:`~Context.net_uses`.  :func:`check_train` checks the ``train`` block (run after the
family is known, so that its errors follow the family's).
"""

from __future__ import annotations

from typing import Any

from gendsl.analysis import library as lib
from gendsl.analysis.context import Context, StatementVisitor, is_quantize, where
from gendsl.analysis.mixtures import check_components
from gendsl.analysis.model import Site
from gendsl.analysis.options import describe
from gendsl.analysis.resolve import closest, unknown
from gendsl.distributions import DISTRIBUTIONS, DistInfo
from gendsl.frontend import ast
from gendsl.ir import Variable
from gendsl.source import Span

__all__ = ["TypesPass", "check_train", "run"]

_SUPPORT_WORDS = {
    "binary": ("binary values", "Bernoulli"),
    "label": ("labels", "Categorical"),
}
_NONE: frozenset[str] = frozenset()
_TIME = frozenset({"t"})


def run(cx: Context) -> None:
    """Run the types pass on ``cx``."""
    TypesPass(cx).visit_all(cx.model.body)


def check_train(cx: Context) -> dict[str, Any]:
    """The values of the ``train`` block(s), each checked against :data:`library.TRAIN`."""
    values: dict[str, Any] = {}
    for stmt in cx.model.body:
        if not isinstance(stmt, ast.Train):
            continue
        for kw in stmt.items:
            param = lib.TRAIN.get(kw.name)
            if param is None:
                cx.error(unknown(f"unknown train key '{kw.name}'", kw.name, lib.TRAIN), kw.span)
                continue
            values[kw.name] = cx.opts.value(param, kw.value, f"train {kw.name}")
            cx.opts.in_range("train", kw.name, values[kw.name], kw.value, f"train {kw.name}", None)
    return values


class TypesPass(StatementVisitor):
    def __init__(self, cx: Context):
        self.cx = cx

    # ------------------------------------------------------------------ statements
    def visit_Let(self, stmt: ast.Let) -> None:
        self.expr(stmt.value, frozenset(stmt.params), "let")

    def visit_Sample(self, stmt: ast.Sample) -> None:
        self.sample(stmt, self.cx.sampled, self.cx.sites)

    def visit_Assign(self, stmt: ast.Assign) -> None:
        self.expr(stmt.value, _NONE, "quantize" if is_quantize(stmt) else "plain")
        self.twice(stmt.target, stmt.target_span, self.cx.sampled)

    def visit_Guide(self, stmt: ast.Guide) -> None:
        for g in stmt.body:
            if isinstance(g, ast.Sample):
                self.sample(g, self.cx.guide_sampled, self.cx.guide_sites)
            else:
                self.cx.error("a guide holds only sample statements (z | x ~ ...)", g.span)

    def visit_SDE(self, stmt: ast.SDE) -> None:
        self.expr(stmt.rhs, frozenset({stmt.time, "dt", "dw"}), "sde")
        self.expr(stmt.t0, _NONE, "plain")
        self.expr(stmt.t1, _NONE, "plain")

    def visit_Chain(self, stmt: ast.Chain) -> None:
        self.dist_args(stmt.dist, frozenset({stmt.index, stmt.range_var}), "chain")
        self.expr(stmt.lo, _NONE, "plain")
        self.expr(stmt.hi, _NONE, "plain")

    def visit_Path(self, stmt: ast.Path) -> None:
        self.expr(stmt.value, _TIME, "path")

    def visit_Predict(self, stmt: ast.Predict) -> None:
        self.expr(stmt.value, _TIME, "consistency" if stmt.kind == "x0" else "predict")

    def visit_Critic(self, stmt: ast.Critic) -> None:
        if stmt.value is not None:
            self.expr(stmt.value, _NONE, "plain")
        elif stmt.name not in self.cx.net_decls:
            self.cx.not_a_net(stmt.name, stmt.span, "critic")
        for p in stmt.params:
            if p not in self.cx.variables:
                self.cx.error(f"undefined name '{p}'{closest(p, self.cx.variables)}", stmt.span)

    def visit_Energy(self, stmt: ast.Energy) -> None:
        cx = self.cx
        if stmt.value is not None:
            self.expr(stmt.value, frozenset(stmt.params), "plain")
            return
        if stmt.name not in cx.net_decls:
            cx.not_a_net(stmt.name, stmt.span, "energy")
        for p in stmt.params:
            if p not in cx.variables:
                cx.error(f"undefined name '{p}'{closest(p, cx.variables)}", stmt.span)

    def visit_Couple(self, stmt: ast.Couple) -> None:
        for n in (stmt.left, stmt.right):
            if n not in self.cx.variables:
                self.cx.error(f"undefined name '{n}'{closest(n, self.cx.variables)}", stmt.span)

    # ------------------------------------------------------------------ expressions
    def expr(self, e: ast.Expr, local: frozenset[str], ctx: str) -> None:
        """Check names and calls in ``e``; ``local`` names are bound (t, k, parameters)."""
        derivatives = [n for n in ast.walk(e) if ast.is_derivative(n)]
        divisors = {id(n.right) for n in derivatives}
        operators = {id(n.left) for n in derivatives}
        for node in ast.walk(e):
            if isinstance(node, ast.Name) and id(node) in divisors:
                self.divisor(node, local)
            elif isinstance(node, ast.Name):
                self.name(node, local, ctx)
            elif isinstance(node, ast.Call) and node.func == "d" and id(node) not in operators:
                self.cx.error(
                    "d(E) is a time derivative: divide it by the time, d(E)/dt", node.span
                )
            elif isinstance(node, ast.Call):
                self.call(node, ctx)

    def divisor(self, node: ast.Name, local: frozenset[str]) -> None:
        """The ``dX`` of ``d(E)/dX``: ``X`` must be a time bound here."""
        time = node.id[1:]
        if time not in local:
            self.cx.error(
                f"d(E)/{node.id}: '{time}' is not a time here; a time derivative is taken in a "
                f"let of the time (let f({time}) = d(E)/{node.id}), an sde or a path",
                node.span,
            )

    def name(self, node: ast.Name, local: frozenset[str], ctx: str) -> None:
        cx = self.cx
        n = node.id
        if n in local or n in cx.variables or n in cx.defined or n in lib.CONSTANTS:
            if ctx != "consistency" and (n in cx.net_decls or n in cx.flows or n in cx.funcs):
                cx.error(f"'{n}' must be called, as in {n}(...)", node.span)
            return
        if n in ("dt", "dw"):
            cx.error(f"'{n}' is only defined inside an sde statement", node.span)
        elif n == "w":
            cx.error(
                "'w' (standard Gaussian noise) is only defined inside a path statement", node.span
            )
        elif n == "t":
            cx.error(
                "'t' (time) is only defined in sde, path and predict statements and in let "
                "functions such as let beta(t) = ...",
                node.span,
            )
        elif n in lib.KEYWORDS:
            cx.error(f"'{n}' is a keyword and cannot be used as a name", node.span)
        else:
            cx.error(f"undefined name '{n}'{closest(n, [*cx.in_scope(), *local])}", node.span)

    def call(self, node: ast.Call, ctx: str) -> None:
        f = node.func
        if f in self.cx.net_decls:
            self.note_use(node)
            if node.kwargs:
                self.cx.error(f"network '{f}' takes only positional inputs", node.kwargs[0].span)
            return
        arity = self.arity(node, ctx)
        if arity is None:
            return
        if node.kwargs:
            self.cx.error(f"'{f}' takes no named arguments", node.kwargs[0].span)
        if len(node.args) != arity:
            self.cx.error(
                f"'{f}' takes {arity} argument{'s' if arity != 1 else ''}; found {len(node.args)}",
                node.span,
            )

    def arity(self, node: ast.Call, ctx: str) -> int | None:
        """How many arguments the (non-network) function ``node`` calls takes; ``None``: the
        call was reported or takes any arguments."""
        cx, f = self.cx, node.func
        if f in cx.flows:
            return 1
        for table in (cx.funcs, lib.MATH_FUNCTIONS, lib.REDUCTIONS, lib.CONSTRUCTORS):
            if f in table:
                return table[f]
        if f == "d":
            return 1
        if f == "quantize":
            if ctx != "quantize":
                cx.error(
                    "quantize(...) must be assigned to a code latent: e = quantize(enc(x))",
                    node.span,
                )
            return 1
        if f == "consistency":
            if ctx != "consistency":
                cx.error("consistency(...) is only allowed in 'predict x0 = ...'", node.span)
            return None
        self.not_callable(node)
        return None

    def not_callable(self, node: ast.Call) -> None:
        cx, f = self.cx, node.func
        if f in cx.variables or f in cx.defined:
            what = cx.defined.get(f, ("variable",))[0]
            cx.error(
                f"'{f}' is a {what}, not a network or function; only nets, flows and let "
                "functions can be called",
                node.func_span,
            )
        elif f in DISTRIBUTIONS:
            cx.error(
                f"'{f}' is a distribution: use it after '~', as in 'z ~ {f}(...)'", node.func_span
            )
        else:
            callables = [
                *cx.net_decls,
                *cx.flows,
                *cx.funcs,
                *lib.MATH_FUNCTIONS,
                *lib.REDUCTIONS,
                *lib.CONSTRUCTORS,
            ]
            cx.error(f"undefined function '{f}'{closest(f, callables)}", node.func_span)

    def note_use(self, node: ast.Call) -> None:
        first = self.cx.net_uses.get(node.func)
        if first is None:
            self.cx.net_uses[node.func] = (len(node.args), node.span)
        elif first[0] != len(node.args):
            self.cx.error(
                f"network '{node.func}' is called with {len(node.args)} input"
                f"{'s' if len(node.args) != 1 else ''} here but with {first[0]} "
                f"{where(first[1], node.span)}",
                node.span,
            )

    def dist_args(self, call: ast.Call, local: frozenset[str], ctx: str) -> None:
        for a in call.args:
            self.expr(a, local, ctx)
        for k in call.kwargs:
            self.expr(k.value, local, ctx)

    # ------------------------------------------------------------------ sampling
    def twice(self, name: str, span: Span, seen: dict[str, Span]) -> bool:
        first = seen.get(name)
        if first is not None:
            self.cx.error(
                f"'{name}' is generated twice: it is already sampled or assigned "
                f"{where(first, span)}",
                span,
            )
            return False
        seen[name] = span
        return True

    def sample(self, stmt: ast.Sample, seen: dict[str, Span], sites: list[Site]) -> None:
        cx = self.cx
        var = cx.variables.get(stmt.target)
        if var is None:
            cx.error(
                f"'{stmt.target}' is sampled but never declared; declare it, e.g. "
                f"'latent {stmt.target} : real[8]'{closest(stmt.target, cx.variables)}",
                stmt.target_span,
            )
        elif var.role not in ("data", "latent"):
            cx.error(
                f"only data and latent variables can be sampled; '{stmt.target}' is a "
                f"{var.role} variable",
                stmt.target_span,
            )
        self.twice(stmt.target, stmt.target_span, seen)
        for g in stmt.given:
            if g.id not in cx.variables:
                cx.error(f"undefined name '{g.id}'{closest(g.id, cx.variables)}", g.span)
        self.dist_args(stmt.dist, _NONE, "plain")
        site = self.dist(stmt.dist, var, stmt)
        if site is not None:
            sites.append(site)

    def dist(self, call: ast.Call, var: Variable | None, stmt: ast.Sample) -> Site | None:
        info = DISTRIBUTIONS.get(call.func)
        if info is None:
            self.cx.error(
                f"unknown distribution '{call.func}'{closest(call.func, DISTRIBUTIONS)}",
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
            if call.args[0].func not in self.cx.net_decls:
                return None  # reported as an undefined function
            return Site(stmt.target, given, info.name, {}, call.args[0], stmt.span) if ok else None
        params = self.params(info, call)
        if params is None:
            return None
        for p in info.positive:
            value = params.get(p)
            negative = isinstance(value, ast.Neg) and isinstance(value.operand, ast.Num)
            if negative or (isinstance(value, ast.Num) and value.value <= 0):
                self.cx.error(f"{p} must be > 0; found {describe(value)}", value.span)
                ok = False
        ok = check_components(info, params, self.cx.error) and ok
        return Site(stmt.target, given, info.name, params, None, stmt.span) if ok else None

    def params(self, info: DistInfo, call: ast.Call) -> dict[str, ast.Expr] | None:
        """The distribution's parameters by name (``None``: reported as wrong)."""
        cx = self.cx
        names = info.params or info.alternatives[:1]
        accepted = info.params or info.alternatives
        listed = ", ".join(info.params) if info.params else " | ".join(info.alternatives)
        params: dict[str, ast.Expr] = {}
        if len(call.args) > len(names):
            cx.error(
                f"{info.name} takes {len(names)} parameter{'s' if len(names) > 1 else ''} "
                f"({listed}); found {len(call.args)}",
                call.args[len(names)].span,
            )
            return None
        params.update(zip(names, call.args, strict=False))
        for kw in call.kwargs:
            if kw.name not in accepted:
                cx.error(
                    unknown(f"{info.name} has no parameter '{kw.name}'", kw.name, accepted),
                    kw.span,
                )
                return None
            if kw.name in params:
                cx.error(f"{info.name}: parameter '{kw.name}' is given twice", kw.span)
                return None
            params[kw.name] = kw.value
        if info.alternatives and len(params) != 1:
            cx.error(f"{info.name} needs exactly one of {listed}; found {len(params)}", call.span)
            return None
        missing = [p for p in info.params if p not in params]
        if not info.alternatives and missing:
            cx.error(f"{info.name} is missing {', '.join(missing)}; expected {listed}", call.span)
            return None
        return params

    def not_nets(self) -> set[str]:
        """Callable names that are not networks (their value is not a packed output)."""
        cx = self.cx
        not_nets = (*cx.flows, *cx.funcs, *lib.MATH_FUNCTIONS, *lib.REDUCTIONS, *lib.CONSTRUCTORS)
        return {*not_nets, "quantize"}

    def fits(self, info: DistInfo, var: Variable | None, call: ast.Call) -> bool:
        if var is None or var.type.kind not in ("binary", "label"):
            kind = var.type.kind if var is not None else None
            binary_image = kind == "image" and info.support == "binary"  # binarised images
            if var is not None and info.support in ("binary", "label") and not binary_image:
                self.cx.error(
                    f"{info.name} is a distribution over {_SUPPORT_WORDS[info.support][0]}; "
                    f"'{var.name}' is {var.type.kind}",
                    call.func_span,
                )
                return False
            return True
        kind = var.type.kind
        if info.support != kind:
            words, example = _SUPPORT_WORDS[kind]
            self.cx.error(
                f"expected a distribution over {words} such as {example}; found {info.name}",
                call.func_span,
            )
            return False
        return True
