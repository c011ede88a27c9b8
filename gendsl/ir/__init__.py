"""The typed intermediate representation between the checker and everything below it.

The checker converts each checked model into a :class:`CheckedModel` of IR nodes
(:mod:`gendsl.analysis.to_ir`); the symbolic core (:mod:`gendsl.symbolic`), the back ends
(:mod:`gendsl.lower`) and the drawing code read only this package, never the syntax tree.
It imports neither torch nor the checker.  See ``docs/ir.md``.
"""

from gendsl.ir import nodes
from gendsl.ir.model import CheckedModel, LatentSpace, Site
from gendsl.ir.nodes import *  # noqa: F403  (the node classes are the package's vocabulary)
from gendsl.ir.nodes import __all__ as _nodes_all
from gendsl.ir.printer import format_expr, format_statement
from gendsl.ir.types import NetSpec, Opt, Shape, Variable, VarType
from gendsl.ir.values import to_value

__all__ = [
    *_nodes_all,
    "CheckedModel",
    "LatentSpace",
    "NetSpec",
    "Opt",
    "Shape",
    "Site",
    "VarType",
    "Variable",
    "format_expr",
    "format_statement",
    "nodes",
    "to_value",
]
