"""What the checker's passes share: one :class:`Context` per model and the statement visitor.

Each pass (:mod:`~gendsl.analysis.scope`, :mod:`~gendsl.analysis.types`,
:mod:`~gendsl.analysis.family_rules`, :mod:`~gendsl.analysis.shapes`,
:mod:`~gendsl.analysis.graph`) reads what the earlier passes left in the context, adds its own
results and reports errors through :meth:`Context.error`.  The passes walk the model's
statements with a :class:`StatementVisitor`: ``visit(stmt)`` calls the method named after the
statement's class (``visit_Sample``, ``visit_Assign``...); a statement without one is skipped.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from gendsl.analysis import library as lib
from gendsl.analysis.model import Site
from gendsl.analysis.options import OptionChecker
from gendsl.analysis.resolve import Scope, closest
from gendsl.errors import Diagnostic, SpecError
from gendsl.frontend import ast
from gendsl.ir import NetSpec, Opt, Shape, Variable
from gendsl.source import Span

__all__ = ["Context", "StatementVisitor", "is_quantize", "where"]


def where(span: Span, here: Span) -> str:
    """``line 4`` in the same file, ``file:line`` otherwise."""
    if span.file != here.file:
        return f"at {span.file}:{span.line}"
    return f"on line {span.line}" if span.line != here.line else f"at column {span.column}"


def is_quantize(stmt: ast.Assign) -> bool:
    """``e = quantize(...)``: the assignment of a vector-quantised code."""
    return isinstance(stmt.value, ast.Call) and stmt.value.func == "quantize"


class StatementVisitor:
    """Dispatches a statement to the method named ``<prefix>_<StatementClass>``.

    ``visit(stmt)`` calls ``visit_Sample(stmt)`` for a :class:`~gendsl.frontend.ast.Sample`;
    a pass that walks the model more than once (the scope pass defines names before it
    defines the variables of assignments) names its walks by prefix:
    ``visit(stmt, prefix="define")`` calls ``define_Sample``.  Extra positional arguments are
    passed on.  Statements without a method are skipped, so a pass names only the statements
    it cares about.
    """

    def visit(self, stmt: ast.Stmt, *args: Any, prefix: str = "visit") -> Any:
        method = getattr(self, f"{prefix}_{type(stmt).__name__}", None)
        return method(stmt, *args) if method is not None else None

    def visit_all(self, stmts: tuple[ast.Stmt, ...], *, prefix: str = "visit") -> None:
        """Visit ``stmts`` in order."""
        for stmt in stmts:
            self.visit(stmt, prefix=prefix)


@dataclass(eq=False)
class Context:
    """One model under check: the merged model, its scope, and what the passes found."""

    scope: Scope
    model: ast.Model
    errors: list[Diagnostic] = field(default_factory=list)
    # scope pass: every name and what it is
    defined: dict[str, tuple[str, Span]] = field(default_factory=dict)
    variables: dict[str, Variable] = field(default_factory=dict)
    lets: dict[str, ast.Let] = field(default_factory=dict)
    funcs: dict[str, int] = field(default_factory=dict)
    net_decls: dict[str, ast.Net] = field(default_factory=dict)
    flows: dict[str, ast.Flow] = field(default_factory=dict)
    sizes: dict[str, int] = field(default_factory=dict)
    # types pass: sampling sites, what is generated where, how networks are called
    sampled: dict[str, Span] = field(default_factory=dict)
    guide_sampled: dict[str, Span] = field(default_factory=dict)
    sites: list[Site] = field(default_factory=list)
    guide_sites: list[Site] = field(default_factory=list)
    net_uses: dict[str, tuple[int, Span]] = field(default_factory=dict)
    # family rules: the family and its options
    family: str | None = None
    train: dict[str, Any] = field(default_factory=dict)
    loss: Opt | None = None
    sampler: Opt | None = None
    # shapes pass: network signatures and the shapes of derived variables
    nets: dict[str, NetSpec] = field(default_factory=dict)
    shapes: dict[str, Shape] = field(default_factory=dict)
    opts: OptionChecker = field(init=False)

    def __post_init__(self) -> None:
        self.opts = OptionChecker(
            self.error, models=self.scope.models, nets=self.net_decls, variables=self.variables
        )

    def error(self, message: str, span: Span) -> None:
        """Report an error at ``span`` (checking goes on)."""
        self.errors.append(SpecError(message, span, self.scope.sources.get(span.file)))

    def define(self, name: str, what: str, span: Span) -> bool:
        """Define ``name`` as a ``what``; report a keyword or a second definition."""
        if name in lib.KEYWORDS:
            self.error(f"'{name}' is a keyword and cannot be used as a name", span)
            return False
        first = self.defined.get(name)
        if first is not None:
            self.error(
                f"'{name}' is already defined as a {first[0]} {where(first[1], span)}", span
            )
            return False
        self.defined[name] = (what, span)
        return True

    def one(self, cls: type) -> Any:
        """The model's first statement of class ``cls`` (``None``: it has none)."""
        return next((s for s in self.model.body if isinstance(s, cls)), None)

    def data_var(self) -> Variable | None:
        return next((v for v in self.variables.values() if v.role == "data"), None)

    def condition_vars(self) -> list[Variable]:
        return [v for v in self.variables.values() if v.role == "condition"]

    def in_scope(self) -> list[str]:
        return [*self.defined, *self.variables, *lib.CONSTANTS]

    def not_a_net(self, name: str, span: Span, what: str) -> None:
        self.error(
            f"{what} {name}: expected a network declared with 'net {name} = ...'"
            f"{closest(name, self.net_decls)}",
            span,
        )
