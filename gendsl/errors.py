"""The error hierarchy.

``GendslError`` is the root.  User mistakes are ``SpecSyntaxError`` (the text does not parse) and
``SpecError`` (it parses but means nothing sensible); both carry a :class:`~gendsl.source.Span`
and render as ``file:line:col: error: ...`` with the source line and a caret.  ``DataError`` is a
mismatch between a spec and the data it is given, ``UsageError`` a bad command line.
``InternalError`` is a bug in gendsl and says so.
"""

from __future__ import annotations

from gendsl.source import Source, Span, render

__all__ = [
    "DataError",
    "Diagnostic",
    "GendslError",
    "InternalError",
    "SpecError",
    "SpecErrors",
    "SpecSyntaxError",
    "TrainingError",
    "UsageError",
]


class GendslError(Exception):
    """Base class of every error gendsl raises on purpose."""


class Diagnostic(GendslError):
    """A located user error: a message about a span of a source file."""

    def __init__(self, message: str, span: Span | None = None, source: Source | None = None):
        super().__init__(message)
        self.message = message
        self.span = span
        self.source = source

    def render(self) -> str:
        """``file:line:col: error: message`` with the source line and a caret."""
        return render(self.source, self.span, self.message)

    def __str__(self) -> str:
        return self.render()


class SpecSyntaxError(Diagnostic):
    """The spec text does not parse."""


class SpecError(Diagnostic):
    """The spec parses but is wrong: an undefined name, a shape or type mismatch, a bad loss."""


class SpecErrors(GendslError):
    """Several located errors found in one pass (the checker reports all, not just the first)."""

    def __init__(self, errors: list[Diagnostic]):
        super().__init__("\n".join(e.render() for e in errors))
        self.errors = list(errors)

    def render(self) -> str:
        """Every diagnostic, one after another."""
        return "\n".join(e.render() for e in self.errors)


class DataError(GendslError):
    """The data does not fit the spec's ``data`` declaration (shape, type or range)."""


class UsageError(GendslError):
    """A bad command line or API call (exit code 2)."""


class TrainingError(GendslError):
    """Training cannot go on (for example the loss became NaN); the last checkpoint is kept."""


class InternalError(GendslError):
    """A bug in gendsl. Please report it with the spec that triggered it."""

    def __init__(self, message: str):
        super().__init__(f"internal error, please report: {message}")
