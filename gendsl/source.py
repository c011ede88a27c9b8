"""Source text and spans: where every diagnostic points.

A :class:`Span` is a half-open region of one source file given by 1-based line and column of its
start and end.  :func:`render` turns a span and a message into the diagnostic users see::

    spec.gen:3:12: error: undefined name 'encc'; did you mean 'enc'?
      z | x ~ Normal(encc(x))
                     ^^^^
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

__all__ = ["SPAN_NONE", "Source", "Span", "render", "span_field"]


@dataclass(frozen=True)
class Source:
    """The text of one spec and the name it is reported under (a path or ``<string>``)."""

    name: str
    text: str

    @cached_property
    def _lines(self) -> list[str]:
        return self.text.splitlines()

    def line(self, lineno: int) -> str:
        """Line ``lineno`` (1-based) without its newline; ``""`` past the end.

        The file is split once (on first use) and cached, so locating every statement of a
        file costs time linear in its length.
        """
        lines = self._lines
        return lines[lineno - 1] if 1 <= lineno <= len(lines) else ""


@dataclass(frozen=True)
class Span:
    """A region ``[start, end)`` of a source file; lines and columns are 1-based."""

    file: str
    line: int
    column: int
    end_line: int
    end_column: int

    @staticmethod
    def point(file: str, line: int, column: int) -> Span:
        """A one-character span."""
        return Span(file, line, column, line, column + 1)

    def to(self, other: Span) -> Span:
        """The span from the start of ``self`` to the end of ``other``."""
        return Span(self.file, self.line, self.column, other.end_line, other.end_column)

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


_MAX_SHOWN = 160


def render(source: Source | None, span: Span | None, message: str, *, kind: str = "error") -> str:
    """Format ``file:line:col: kind: message``, the source line, and a caret under the span.

    Lines longer than 160 characters are shown as a window around the span, so a diagnostic
    never floods the terminal (a 1 MB one-line spec still gives a one-screen message).
    """
    if span is None:
        return f"{source.name if source else '<input>'}: {kind}: {message}"
    head = f"{span}: {kind}: {message}"
    if source is None:
        return head
    text = source.line(span.line).replace("\t", " ")
    start = max(span.column - 1, 0)
    width = (span.end_column - span.column) if span.end_line == span.line else len(text) - start
    width = max(1, min(width, max(len(text) - start, 1)))
    if len(text) > _MAX_SHOWN:
        left = max(0, start - _MAX_SHOWN // 2)
        text = text[left : left + _MAX_SHOWN]
        start -= left
        width = max(1, min(width, len(text) - start))
    if not text.strip():
        return head
    return f"{head}\n  {text}\n  {' ' * start}{'^' * width}"


#: The span of a node the compiler made rather than read (it points into no file).
SPAN_NONE = Span("<generated>", 0, 0, 0, 0)


def span_field() -> Any:
    """The dataclass field of a node's span (in the syntax tree and in the IR): it defaults to
    :data:`SPAN_NONE` and takes no part in equality or repr, so two trees that differ only in
    where they were written compare equal."""
    return field(default=SPAN_NONE, compare=False, repr=False)
