"""What ``gendsl derive`` prints: the summary alone (``--brief``) or with the checked steps."""

from __future__ import annotations

from gendsl.errors import UsageError
from gendsl.ir import CheckedModel
from gendsl.symbolic.derived import derive, render
from gendsl.symbolic.steps.build import fresh_steps, stepwise
from gendsl.symbolic.steps.render import render_steps

__all__ = ["derive_output"]


def derive_output(model: CheckedModel, *, format: str = "text", brief: bool = False) -> str:
    """The derivation of ``model`` in ``format``: with ``brief``, exactly what
    :func:`gendsl.symbolic.derived.render` gives; else the summary and the steps, every check
    run (the notebook always builds its steps afresh, since it shows the checks' code)."""
    if brief:
        if format == "notebook":
            raise UsageError("--format notebook writes the steps and their checks; drop --brief")
        return render(derive(model), format)
    steps = fresh_steps(model) if format == "notebook" else stepwise(model)
    return render_steps(derive(model), steps, format)
