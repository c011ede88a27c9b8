"""The front end: the LALR parser (text to AST), the AST, and the canonical printer."""

from gendsl.frontend.parser import parse, parse_expr
from gendsl.frontend.printer import format_expr, format_program, format_source, format_statement

__all__ = [
    "format_expr",
    "format_program",
    "format_source",
    "format_statement",
    "parse",
    "parse_expr",
]
