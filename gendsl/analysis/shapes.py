"""The shapes pass: the input and output shapes of every network, from how the model uses it.

A network's output shape comes from where its value goes (a distribution parameter of a
declared variable, a packed ``Normal(net(z))`` with one row per parameter, a declared
assignment, a predict statement: the data's shape, a classifier: the number of classes); its
input shapes from the shapes of its arguments.  A network used twice must be used alike.  It
fills :attr:`Context.nets` (one :class:`NetSpec` per network) and :attr:`Context.shapes` (the
shapes of derived variables).  Quantised assignments are visited first: an encoder's output
fixes the shape of the code that other statements use (a ``ConvNet`` encoder's grid, its
input halved ``down`` times: :mod:`~gendsl.analysis.resampling`).
"""

from __future__ import annotations

from typing import Any

from gendsl.analysis import library as lib
from gendsl.analysis import resampling, sequences
from gendsl.analysis.context import Context, StatementVisitor, is_quantize, where
from gendsl.analysis.model import Site, to_value
from gendsl.analysis.options import describe
from gendsl.distributions import DISTRIBUTIONS
from gendsl.frontend import ast
from gendsl.ir import NetSpec, Shape

__all__ = ["ShapesPass", "run"]


def run(cx: Context) -> None:
    """Run the shapes pass on ``cx``."""
    ShapesPass(cx).run()


def _shape(shape: Shape | None) -> str:
    if shape is None:
        return "(unknown)"
    return "(" + ", ".join(str(s) for s in shape) + ("," if len(shape) == 1 else "") + ")"


def _shapes(shapes: Any) -> str:
    return "[" + ", ".join(_shape(s) for s in shapes) + "]"


def _plain(e: ast.Expr) -> Any:
    try:
        return to_value(e)
    except TypeError:
        return describe(e)


class ShapesPass(StatementVisitor):
    def __init__(self, cx: Context):
        self.cx = cx
        self.sites = {s.span: s for s in cx.sites}
        self.data = cx.data_var()
        self.reported: set[tuple[str, Any]] = set()

    def run(self) -> None:
        body = self.cx.model.body
        quantized = [s for s in body if isinstance(s, ast.Assign) and is_quantize(s)]
        self.visit_all((*quantized, *(s for s in body if s not in quantized)))

    # ------------------------------------------------------------------ statements
    def visit_Sample(self, stmt: ast.Sample) -> None:
        if stmt.span in self.sites:
            self.site_shapes(self.sites[stmt.span])

    def visit_Net(self, stmt: ast.Net) -> None:
        resampling.check_declaration(stmt, self.cx.error)

    def visit_Assign(self, stmt: ast.Assign) -> None:
        cx = self.cx
        var = cx.variables.get(stmt.target)
        value = stmt.value
        if var is not None and var.type.kind == "code" and is_quantize(stmt):
            inner = value.args[0] if value.args else None
            if isinstance(inner, ast.Call) and inner.func in cx.net_decls:
                src = self.shape_of(inner.args[0]) if inner.args else None
                decl = cx.net_decls[inner.func]
                out = resampling.code_grid(decl, src, var.type.shape, cx.error)
                self.use_net(inner, out)
                cx.shapes[stmt.target] = out
            return
        declared = var is not None and var.role != "derived"
        self.expr_nets(value, var.type.shape if declared else None)
        if not declared and var is not None:
            shape = self.shape_of(value)
            if shape is not None:
                cx.shapes[stmt.target] = shape

    def visit_Predict(self, stmt: ast.Predict) -> None:
        call = stmt.value
        if not isinstance(call, ast.Call):
            return
        data = self.data
        if call.func == "consistency" and call.args:
            inner = call.args[0]
            noised = ast.Name(f"{data.name}_t" if data else "x_t", call.span)
            if isinstance(inner, ast.Name):
                call = ast.Call(inner.id, (noised, ast.Name("t")), (), call.span)
        self.use_net(call, data.type.shape if data is not None else ())

    def visit_Critic(self, stmt: ast.Critic) -> None:
        params = stmt.params or ((self.data.name,) if self.data else ())
        self.scorer(stmt, params)

    def visit_Energy(self, stmt: ast.Energy) -> None:
        variables = [self.cx.variables.get(p) for p in stmt.params]
        labels = [v for v in variables if v is not None and v.type.kind == "label"]
        if stmt.value is None and labels:  # JEM: E(x, y) = -f(x)[y], f a classifier of x
            rest = tuple(p for p in stmt.params if p != labels[0].name)
            self.scorer(stmt, rest, (labels[0].type.classes,))
        else:
            self.scorer(stmt, stmt.params)

    def scorer(
        self, stmt: ast.Critic | ast.Energy, params: tuple[str, ...], out: Shape = ()
    ) -> None:
        """A critic or an energy: a scalar expression, or a network of ``params`` (with
        output shape ``out``)."""
        if stmt.value is not None:
            self.expr_nets(stmt.value, ())
            self.scalar(stmt, stmt.value)
        elif stmt.name in self.cx.net_decls:
            args = tuple(ast.Name(p, stmt.span) for p in params)
            self.use_net(ast.Call(stmt.name, args, (), stmt.span), out)

    def visit_Guide(self, stmt: ast.Guide) -> None:
        for site in self.cx.guide_sites:
            self.site_shapes(site)

    def visit_Guidance(self, stmt: ast.Guidance) -> None:
        if stmt.option.name != "classifier":
            return
        clf = stmt.option.args[0] if stmt.option.args else None
        labels = [v for v in self.cx.condition_vars() if v.type.kind == "label"]
        data = self.data
        if isinstance(clf, ast.Name) and labels and data is not None:
            args = (ast.Name(f"{data.name}_t", stmt.span), ast.Name("t", stmt.span))
            self.use_net(ast.Call(clf.id, args, (), stmt.span), (labels[0].type.classes,))

    # ------------------------------------------------------------------ shapes
    def shape_of(self, e: ast.Expr) -> Shape | None:
        cx = self.cx
        if isinstance(e, ast.Num):
            return ()
        if isinstance(e, ast.Index):
            return self.index_shape(e)
        if isinstance(e, ast.Name):
            var = cx.variables.get(e.id)
            if var is not None:
                return cx.shapes.get(e.id, var.type.shape)
            return () if e.id in cx.lets or e.id in lib.CONSTANTS or e.id == "t" else None
        if isinstance(e, ast.Call):
            if e.func in cx.net_decls:
                spec = cx.nets.get(e.func)
                return spec.out_shape if spec is not None else None
            if e.func in lib.REDUCTIONS:
                self.reduced(e)
                return ()
            return self.shape_of(e.args[0]) if e.args else ()
        if isinstance(e, ast.Neg):
            return self.shape_of(e.operand)
        if isinstance(e, ast.BinOp):
            left, right = self.shape_of(e.left), self.shape_of(e.right)
            if left is None or right is None:
                return None
            return left if len(left) >= len(right) else right
        return None

    def report(self, message: str, span: Any) -> None:
        """Report an error once (an expression's shape may be asked for more than once)."""
        if (message, span) not in self.reported:
            self.reported.add((message, span))
            self.cx.error(message, span)

    def index_shape(self, e: ast.Index) -> Shape:
        """``x[i]`` drops ``x``'s first event axis; a constant ``i`` must lie inside it."""
        base = self.shape_of(e.base)
        if not base:
            return ()
        i, n = e.index, base[0]
        if isinstance(i, ast.Neg) and isinstance(i.operand, ast.Num):
            self.report(f"index {describe(i)} is negative; indices run from 0", i.span)
        elif isinstance(i, ast.Num) and isinstance(n, int) and not 0 <= i.value < n:
            self.report(
                f"index {describe(i)} is out of range for '{describe(e.base)}' of shape "
                f"{_shape(base)}: indices run from 0 to {n - 1}",
                i.span,
            )
        return base[1:]

    def reduced(self, e: ast.Call) -> None:
        """``dot(x, y)`` needs two values of one shape."""
        if e.func != "dot" or len(e.args) != 2:
            return
        left, right = (self.shape_of(a) for a in e.args)
        if left is not None and right is not None and left != right:
            self.report(
                f"dot({describe(e.args[0])}, {describe(e.args[1])}) needs two values of one "
                f"shape; found {_shape(left)} and {_shape(right)}",
                e.span,
            )

    def scalar(self, stmt: ast.Critic | ast.Energy, e: ast.Expr) -> None:
        """A critic or an energy is one number per sample; an expression of a variable's shape
        is summed over its coordinates, but adding such a term to a per-sample number
        (``0.5 * x^2 + E(x)``: ``(2,)`` plus ``()``) is refused at the term."""
        terms = self.terms(e)
        vector = next((t for t in terms if self.shape_of(t)), None)
        number = next((t for t in terms if self.shape_of(t) == () and self.per_sample(t)), None)
        if vector is not None and number is not None:
            what = "critic" if isinstance(stmt, ast.Critic) else "energy"
            self.report(
                f"the {what} '{stmt.name}' adds '{describe(number)}', one number per sample, "
                f"to '{describe(vector)}' of shape {_shape(self.shape_of(vector))}: reduce "
                f"it, e.g. sum({describe(vector)})",
                vector.span,
            )

    def terms(self, e: ast.Expr) -> list[ast.Expr]:
        """The terms of the sum ``e``."""
        if isinstance(e, ast.BinOp) and e.op in "+-":
            return [*self.terms(e.left), *self.terms(e.right)]
        return [e]

    def per_sample(self, e: ast.Expr) -> bool:
        """Whether ``e`` mentions a per-sample value (a variable or a network call)."""
        cx = self.cx
        return any(
            (isinstance(n, ast.Name) and n.id in cx.variables)
            or (isinstance(n, ast.Call) and n.func in cx.net_decls)
            for n in ast.walk(e)
        )

    def use_net(self, call: ast.Call, out: Shape | None) -> None:
        cx = self.cx
        if call.func not in cx.net_decls:
            return
        time = False
        classes: int | str | None = None
        in_shapes: list[Shape] = []
        in_names: list[str] = []
        for arg in call.args:
            var = cx.variables.get(arg.id) if isinstance(arg, ast.Name) else None
            if isinstance(arg, ast.Name) and arg.id == "t" and var is None:
                time = True
            elif var is not None and var.type.kind == "label":
                classes = var.type.classes
            else:
                in_shapes.append(self.input_shape(arg))
                in_names.append(describe(arg))
        first = cx.nets.get(call.func)
        if first is not None:
            if len(first.inputs) != len(call.args):
                return  # reported by the types pass
            if first.in_shapes != tuple(in_shapes) or (out is not None and out != first.out_shape):
                cx.error(
                    f"network '{call.func}' is used with input shapes {_shapes(in_shapes)} "
                    f"and output shape {_shape(out)} here, but with {_shapes(first.in_shapes)} "
                    f"and {_shape(first.out_shape)} {where(first.span, call.span)}",
                    call.span,
                )
            return
        if out is None:
            cx.error(
                f"cannot infer the output shape of network '{call.func}': use it where its "
                "shape is known, e.g. as a distribution parameter or assigned to a declared "
                "variable",
                call.span,
            )
            return
        decl = cx.net_decls[call.func]
        options = {k.name: _plain(k.value) for k in decl.constructor.kwargs}
        spec = cx.nets[call.func] = NetSpec(
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
        resampling.check_stages(spec, decl, call.span, cx.error)
        sequences.check_condition_inputs(spec, decl, in_names, call.span, cx.error)

    def input_shape(self, arg: ast.Expr) -> Shape:
        shape = self.shape_of(arg)
        if shape is None:
            self.cx.error(
                f"cannot infer the shape of '{describe(arg)}': declare it with a type, "
                "e.g. 'latent h : real[8]'",
                arg.span,
            )
            return ()
        return shape

    def site_shapes(self, site: Site) -> None:
        var = self.cx.variables.get(site.name)
        if var is None:
            return
        target = (var.type.classes,) if var.type.kind == "label" else var.type.shape
        if site.packed is not None:
            n = DISTRIBUTIONS[site.dist].n_params()
            self.use_net(site.packed, (n, *target))
            return
        for value in site.params.values():
            self.expr_nets(value, target)

    def expr_nets(self, e: ast.Expr, out: Shape | None) -> None:
        """Register every network call in ``e``; calls at the top of an element-wise expression
        produce ``out``; calls nested in other calls have their shape inferred elsewhere."""
        if isinstance(e, ast.Call) and e.func in self.cx.net_decls:
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
