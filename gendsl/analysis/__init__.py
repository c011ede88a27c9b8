"""The checker: from a parsed spec to checked models the back ends consume."""

from gendsl.analysis.check import check_file, check_text, load_checked, model_graph, report
from gendsl.ir import CheckedModel, NetSpec, Opt, Site, Variable, VarType

__all__ = [
    "CheckedModel",
    "NetSpec",
    "Opt",
    "Site",
    "VarType",
    "Variable",
    "check_file",
    "check_text",
    "load_checked",
    "model_graph",
    "report",
]
