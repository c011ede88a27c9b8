"""The stepwise derivation in four formats: ``text`` (terminal), ``markdown`` (with LaTeX
math), ``latex`` (a standalone document) and ``notebook`` (Jupyter, written with nbformat:
one markdown cell per step and one code cell running its check).

The text, Markdown and LaTeX outputs start with the summary of
:func:`gendsl.symbolic.derived.render` (what ``gendsl derive --brief`` prints) and add the steps
after it.
"""

from __future__ import annotations

from gendsl.errors import UsageError
from gendsl.symbolic.derived import Derivation, render
from gendsl.symbolic.steps.model import PRELUDE, Outcome, Step, Steps

__all__ = ["STEP_FORMATS", "render_steps"]

STEP_FORMATS = ("text", "markdown", "latex", "notebook")

_TEX_SPECIALS = {
    "\\": r"\textbackslash{}",
    "{": r"\{",
    "}": r"\}",
    "_": r"\_",
    "^": r"\^{}",
    "&": r"\&",
    "%": r"\%",
    "#": r"\#",
    "$": r"\$",
    "~": r"\textasciitilde{}",
}


def _tex(text: str) -> str:
    """Plain text for LaTeX's text mode."""
    return "".join(_TEX_SPECIALS.get(c, c) for c in text)


def _md(text: str) -> str:
    """Plain text for Markdown: its emphasis and escape characters escaped."""
    return "".join("\\" + c if c in "\\*_`[]<>" else c for c in text)


def _code(text: str) -> str:
    """Plain text as a Markdown code span."""
    return "`" + text.replace("`", "'") + "`"


def _verdict(outcome: Outcome) -> str:
    if outcome.kind == "given":
        return "given (read off the spec or a definition)"
    if outcome.kind == "unchecked":
        return "not run"
    return f"{outcome.kind} check passed" + (f": {outcome.detail}" if outcome.detail else "")


def _numbered(steps: Steps) -> list[tuple[int, str, list[tuple[str, Step, Outcome]]]]:
    """(topic number, title, [(step number, step, outcome)]) for every topic."""
    outcomes = iter(steps.outcomes or [Outcome("unchecked")] * len(steps.all_steps()))
    return [
        (i, t.title, [(f"{i}.{j}", s, next(outcomes)) for j, s in enumerate(t.steps, 1)])
        for i, t in enumerate(steps.topics, 1)
    ]


def _none(steps: Steps) -> str:
    return f"no stepwise derivation for the {steps.family} family yet: the summary is all"


def _text(steps: Steps) -> list[str]:
    head = f"{steps.model}: steps"
    out = [head, "=" * len(head)]
    if not steps.topics:
        return [*out, _none(steps)]
    for i, title, numbered in _numbered(steps):
        out += ["", f"{i}. {title}", "-" * (len(title) + len(str(i)) + 2)]
        for n, step, outcome in numbered:
            pad = " " * (len(n) + 2)
            out.append(f"{n}  {step.claim}")
            out.append(f"{pad}by: {step.justification}")
            if step.reference:
                out.append(f"{pad}ref: {step.reference}")
            out.append(f"{pad}check: {_verdict(outcome)}")
    return out


def _markdown(steps: Steps) -> list[str]:
    out = [f"## {steps.model}: steps", ""]
    if not steps.topics:
        return [*out, _none(steps)]
    for i, title, numbered in _numbered(steps):
        out += [f"### {i}. {_md(title)}", ""]
        for n, step, outcome in numbered:
            ref = f" ({_md(step.reference)})" if step.reference else ""
            out += [
                f"**{n}** $${step.latex}$$",
                "",
                f"- {_code(step.claim)}",
                f"- *by*: {_md(step.justification)}{ref}",
                f"- *check*: {_md(_verdict(outcome))}",
                "",
            ]
    return out


def _latex(derivation: Derivation, steps: Steps) -> list[str]:
    out = [
        r"\documentclass{article}",
        r"\usepackage[utf8]{inputenc}",
        r"\usepackage{amsmath,amssymb}",
        r"\begin{document}",
        render(derivation, "latex").rstrip("\n"),
        rf"\section*{{{_tex(steps.model)}: steps}}",
    ]
    if not steps.topics:
        out.append(_tex(_none(steps)))
    for i, title, numbered in _numbered(steps):
        out += [rf"\subsection*{{{i}. {_tex(title)}}}", r"\begin{description}"]
        for n, step, outcome in numbered:
            ref = rf" \emph{{({_tex(step.reference)})}}" if step.reference else ""
            out += [
                rf"\item[{n}] \[ {step.latex} \]",
                rf"{_tex(step.justification)}{ref}. Check: {_tex(_verdict(outcome))}.",
            ]
        out.append(r"\end{description}")
    out.append(r"\end{document}")
    return out


def _notebook(derivation: Derivation, steps: Steps) -> str:
    try:
        import nbformat
        from nbformat import v4
    except ImportError:
        raise UsageError(
            "--format notebook needs nbformat: pip install 'gendsl[notebook]'"
        ) from None

    cells = [
        v4.new_markdown_cell(
            f"# {steps.model}: {steps.family} model, step by step\n\n"
            "Written by `gendsl derive --format notebook`. The first code cell binds the spec's "
            "expressions; each step's code cell runs its check (an `assert`).\n\n"
            + render(derivation, "markdown")
        ),
        v4.new_code_cell(PRELUDE + "\n".join(steps.setup)),
    ]
    if not steps.topics:
        cells.append(v4.new_markdown_cell(_none(steps)))
    for i, title, numbered in _numbered(steps):
        cells.append(v4.new_markdown_cell(f"## {i}. {_md(title)}"))
        for n, step, _ in numbered:
            ref = f" ({step.reference})" if step.reference else ""
            cells.append(
                v4.new_markdown_cell(
                    f"**{n}** $${step.latex}$$\n\n{_code(step.claim)}\n\n"
                    f"*by*: {_md(step.justification)}{_md(ref)}"
                )
            )
            if step.check is not None:
                source = step.check.source.strip("\n")
                cells.append(
                    v4.new_code_cell(
                        f"detail = ''\n{source}\nprint({n!r}, '{step.check.kind} check passed', "
                        "detail)"
                    )
                )
    nb = v4.new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nbformat.validate(nb)
    return nbformat.writes(nb)


def render_steps(derivation: Derivation, steps: Steps, format: str = "text") -> str:
    """The summary and the steps in ``format`` (module docstring)."""
    if format not in STEP_FORMATS:
        raise UsageError(f"format must be one of {', '.join(STEP_FORMATS)}, got {format!r}")
    if format == "notebook":
        return _notebook(derivation, steps)
    if format == "latex":
        return "\n".join(_latex(derivation, steps)) + "\n"
    body = _text(steps) if format == "text" else _markdown(steps)
    return render(derivation, format).rstrip("\n") + "\n\n" + "\n".join(body) + "\n"
