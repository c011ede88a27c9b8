"""Finished derivations: their text types, :func:`render`, and :func:`derive` with a cache.

A derivation depends only on the checked model and on the code that derives it, so
:func:`derive` keeps each one (its sections of text and LaTeX lines) in the cache folder
(``$GENDSL_CACHE``, file ``derivations.json``), keyed by a hash of the model's canonical text
(every statement and ``let``, printed canonically, its sizes and its resolved loss and sampler)
and of the deriving modules' source (the family plugins of :mod:`gendsl.families` included).
A spec's second ``gendsl derive`` then imports no sympy at all; the kernel object behind a
cached derivation is recomputed (through the symbolic store) only when asked for.  This module
imports no sympy.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gendsl.cache import read_json, write_json
from gendsl.errors import UsageError
from gendsl.ir import CheckedModel
from gendsl.ir.printer import format_statement

__all__ = ["FORMATS", "Derivation", "Line", "Section", "derive", "fingerprint", "render"]

FORMATS = ("text", "markdown", "latex")

_FILE = "derivations.json"
_SIZE = 512
#: The modules whose code decides what a derivation says (and every family plugin's).
_CODE = ("derivation", "derived", "kernel", "chain", "path", "expr", "tidy", "store")


@dataclass(frozen=True)
class Line:
    """One derived statement: a label, its plain-text form and its LaTeX form."""

    label: str
    text: str
    latex: str


@dataclass
class Section:
    """A titled group of lines."""

    title: str
    lines: list[Line] = field(default_factory=list)

    def add(self, label: str, text: str, latex: str | None = None) -> None:
        """Append a line (LaTeX defaults to the text in ``\\text{}``)."""
        plain = text.replace("_", r"\_")
        self.lines.append(Line(label, text, latex if latex is not None else rf"\text{{{plain}}}"))

    def expr(self, label: str, lhs: str, e: Any, lhs_latex: str | None = None) -> None:
        """Append ``lhs = e`` from a sympy expression."""
        import sympy as sp

        from gendsl.symbolic.expr import to_text

        self.add(label, f"{lhs} = {to_text(e)}", f"{lhs_latex or lhs} = {sp.latex(e)}")


@dataclass
class Derivation:
    """What :func:`derive` found: sections of equations and the kernel object they came from
    (an SDE :class:`~gendsl.symbolic.kernel.Kernel`, a chain's or a path's; ``None`` for the
    other families)."""

    model: str
    family: str
    sections: list[Section]
    computed_kernel: Any = None
    recompute: Callable[[], Any] | None = field(default=None, repr=False, compare=False)

    @property
    def kernel(self) -> Any:
        """The kernel; recomputed on first use when the derivation came from the cache."""
        if self.computed_kernel is None and self.recompute is not None:
            self.computed_kernel = self.recompute()
        return self.computed_kernel


def fingerprint(model: CheckedModel) -> str:
    """A hash of what a derivation of ``model`` depends on (module docstring)."""
    here = Path(__file__).parent
    code = [here / f"{name}.py" for name in _CODE]
    code += sorted((here.parent / "families").glob("*.py"))
    parts = [path.read_text(encoding="utf-8") for path in code]
    parts += [model.name, model.family, repr(model.loss), repr(model.sampler)]
    parts += model.statements
    parts += sorted(format_statement(let) for let in model.lets.values())
    parts += [repr(sorted(model.sizes.items()))]
    return hashlib.sha256("\n\x00".join(parts).encode()).hexdigest()


def _stored(key: str) -> list[Section] | None:
    entries = read_json(_FILE)
    value = entries.get(key) if isinstance(entries, dict) else None
    try:
        return [Section(s["title"], [Line(*map(str, ln)) for ln in s["lines"]]) for s in value]
    except (TypeError, KeyError, ValueError):
        return None


def _store(key: str, sections: list[Section]) -> None:
    entries = read_json(_FILE)
    entries = dict(entries) if isinstance(entries, dict) else {}
    entries.pop(key, None)
    entries[key] = [
        {"title": s.title, "lines": [[ln.label, ln.text, ln.latex] for ln in s.lines]}
        for s in sections
    ]
    write_json(_FILE, dict(list(entries.items())[-_SIZE:]))


def _fresh(model: CheckedModel) -> Derivation:
    from gendsl.symbolic.derivation import derive_fresh

    return derive_fresh(model)


def derive(model: CheckedModel) -> Derivation:
    """The derivation of ``model`` (:mod:`gendsl.symbolic.derivation`), from the cache when
    this model was derived before by this code."""
    key = fingerprint(model)
    sections = _stored(key)
    if sections is not None:
        return Derivation(
            model.name, model.family, sections, recompute=lambda: _fresh(model).kernel
        )
    derivation = _fresh(model)
    _store(key, derivation.sections)
    return derivation


def render(derivation: Derivation, format: str = "text") -> str:
    """The derivation as ``text``, ``markdown`` or ``latex``."""
    if format not in FORMATS:
        raise UsageError(f"format must be one of {', '.join(FORMATS)}, got {format!r}")
    out: list[str] = []
    for sec in derivation.sections:
        if format == "text":
            out += [sec.title, "=" * len(sec.title)]
            label = ""
            for line in sec.lines:  # an unlabelled line continues the one above
                label = line.label or label
                head = f"{line.label}: " if line.label else " " * (len(label) + 2)
                out.append(head + line.text)
        elif format == "markdown":
            out += [f"## {sec.title}", ""]
            out += [
                f"- **{line.label}**: ${line.latex}$" if line.label else f"  ${line.latex}$"
                for line in sec.lines
            ]
        else:
            out += [rf"\section*{{{sec.title}}}", r"\begin{align*}"]
            out += [
                rf"&\text{{{line.label}:}} && {line.latex} \\"
                if line.label
                else rf"& && {line.latex} \\"
                for line in sec.lines
            ]
            out += [r"\end{align*}"]
        out.append("")
    return "\n".join(out)
