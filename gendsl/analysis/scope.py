"""The scope pass: every name a model defines, and the type of every variable.

It fills :attr:`Context.sizes` (``let N = 8``), :attr:`~Context.defined`,
:attr:`~Context.variables` (declared ones with their :class:`VarType`, the targets of
assignments as ``derived``, and the noised ``x_t`` that an ``sde``, ``chain`` or ``path`` adds),
:attr:`~Context.lets`, :attr:`~Context.funcs` (let functions and energies with their arity),
:attr:`~Context.net_decls` and :attr:`~Context.flows`; it checks network constructors and flow
layers against :mod:`gendsl.analysis.library`.  It walks the model four times, in this order:
sizes, definitions, assigned variables, processes, so that a name is reported where it is
defined a second time whatever the statement order.
"""

from __future__ import annotations

from gendsl.analysis import library as lib
from gendsl.analysis.context import Context, StatementVisitor
from gendsl.analysis.options import describe
from gendsl.analysis.resolve import unknown
from gendsl.frontend import ast
from gendsl.ir import Variable, VarType
from gendsl.source import Span

__all__ = ["ScopePass", "run"]


def run(cx: Context) -> None:
    """Run the scope pass on ``cx``."""
    ScopePass(cx).run()


class ScopePass(StatementVisitor):
    def __init__(self, cx: Context):
        self.cx = cx

    def run(self) -> None:
        body = self.cx.model.body
        for prefix in ("size", "define", "assigned", "process"):
            self.visit_all(body, prefix=prefix)

    # ------------------------------------------------------------------ sizes
    def size_Let(self, stmt: ast.Let) -> None:
        value = stmt.value if not stmt.params else None
        if isinstance(value, ast.Num) and isinstance(value.value, int):
            self.cx.sizes[stmt.name] = value.value

    # ------------------------------------------------------------------ definitions
    def define_Decl(self, stmt: ast.Decl) -> None:
        if self.cx.define(stmt.name, "variable", stmt.name_span):
            vt = self.vartype(stmt.type)
            self.cx.variables[stmt.name] = Variable(stmt.name, stmt.role, vt, stmt.name_span)

    def define_Let(self, stmt: ast.Let) -> None:
        cx = self.cx
        if cx.define(stmt.name, "let", stmt.name_span):
            cx.lets[stmt.name] = stmt
            if stmt.params:
                cx.funcs[stmt.name] = len(stmt.params)
        for p in stmt.params:
            if p in lib.KEYWORDS:
                cx.error(f"'{p}' is a keyword and cannot be used as a name", stmt.span)

    def define_Net(self, stmt: ast.Net) -> None:
        if self.cx.define(stmt.name, "network", stmt.name_span):
            self.cx.net_decls[stmt.name] = stmt
        self.cx.opts.option(lib.NETWORKS, stmt.constructor, "network")

    def define_Flow(self, stmt: ast.Flow) -> None:
        if self.cx.define(stmt.name, "flow", stmt.name_span):
            self.cx.flows[stmt.name] = stmt
        self.layers(stmt.body)

    def define_Critic(self, stmt: ast.Critic) -> None:
        if stmt.value is not None:
            self.cx.define(stmt.name, "critic", stmt.span)

    def define_Energy(self, stmt: ast.Energy) -> None:
        if stmt.value is not None and self.cx.define(stmt.name, "energy", stmt.span):
            self.cx.funcs[stmt.name] = len(stmt.params)

    def layers(self, items: tuple[ast.FlowItem, ...]) -> None:
        for item in items:
            if isinstance(item, ast.Repeat):
                self.layers(item.body)
            else:
                self.cx.opts.option(lib.FLOW_LAYERS, item, "flow layer")

    # ------------------------------------------------------------------ assigned variables
    def assigned_Assign(self, stmt: ast.Assign) -> None:
        cx = self.cx
        if stmt.target not in cx.variables and cx.define(
            stmt.target, "variable", stmt.target_span
        ):
            vt = VarType("real", ())
            cx.variables[stmt.target] = Variable(stmt.target, "derived", vt, stmt.target_span)

    # ------------------------------------------------------------------ processes
    def process_SDE(self, stmt: ast.SDE) -> None:
        name = stmt.differential[1:] if stmt.differential.startswith("d") else ""
        var = self.cx.variables.get(name)
        if var is None or var.role != "data":
            self.cx.error(
                f"expected the differential of a data variable such as dx; found "
                f"'{stmt.differential}'",
                stmt.differential_span,
            )
            return
        self.noised(var, stmt.span)

    def process_Chain(self, stmt: ast.Chain) -> None:
        var = self.cx.variables.get(stmt.var)
        if var is None or var.role != "data":
            self.cx.error(f"a chain runs over a data variable; '{stmt.var}' is not one", stmt.span)
            return
        if stmt.range_var != stmt.index:
            self.cx.error(
                f"the chain is indexed by '{stmt.index}' but its range is over "
                f"'{stmt.range_var}'; write '{stmt.index} in ...'",
                stmt.span,
            )
        self.noised(var, stmt.span)

    def process_Path(self, stmt: ast.Path) -> None:
        cx = self.cx
        var = cx.data_var()
        vt = var.type if var is not None else VarType("real", ())
        if cx.define(stmt.target, "variable", stmt.span):
            cx.variables[stmt.target] = Variable(stmt.target, "noised", vt, stmt.span)
        if "w" not in cx.variables:
            cx.variables["w"] = Variable("w", "noise", vt, stmt.span)

    def noised(self, var: Variable, span: Span) -> None:
        name = f"{var.name}_t"
        if self.cx.define(name, "variable", span):
            self.cx.variables[name] = Variable(name, "noised", var.type, span)

    # ------------------------------------------------------------------ types
    def size(self, e: ast.Expr) -> int | str | None:
        if isinstance(e, ast.Num) and isinstance(e.value, int) and e.value > 0:
            return e.value
        if isinstance(e, ast.Name):
            return self.cx.sizes.get(e.id, e.id)
        self.cx.error(
            f"a size must be a positive whole number or a name; found {describe(e)}", e.span
        )
        return None

    def vartype(self, t: ast.TypeExpr) -> VarType:
        info = lib.TYPES.get(t.kind)
        if info is None:
            self.cx.error(unknown(f"unknown type '{t.kind}'", t.kind, lib.TYPES), t.span)
            return VarType("real", ())
        sizes = tuple(self.size(a) for a in t.args)
        if t.kind == "code":
            return self.code_type(t, info)
        for k in t.kwargs:
            self.cx.error(
                f"{t.kind}[...] takes sizes, not named arguments; found '{k.name}'", k.span
            )
        if info.sizes is not None and len(t.args) != info.sizes:
            shape = {"image": "[C, H, W]", "label": "[K]"}[t.kind]
            self.cx.error(
                f"{t.kind} needs {info.sizes} size{'s' if info.sizes > 1 else ''} {shape}; "
                f"found {len(t.args)}",
                t.span,
            )
        elif not t.args:
            self.cx.error(f"{t.kind} needs at least one size, e.g. {t.kind}[2]", t.span)
        if t.kind == "label":
            return VarType("label", (), sizes[0] if sizes else None)
        return VarType(t.kind, tuple(s if s is not None else 1 for s in sizes))

    def code_type(self, t: ast.TypeExpr, info: lib.TypeInfo) -> VarType:
        kw = {k.name: k for k in t.kwargs}
        extra = [k for k in t.kwargs if k.name not in info.keywords]
        if t.args or extra or set(kw) != set(info.keywords):
            self.cx.error(f"expected code[K = ..., dim = ...]; found {t.kind}[...]", t.span)
            return VarType("code", (1,), 1)
        return VarType("code", (self.size(kw["dim"].value),), self.size(kw["K"].value))
