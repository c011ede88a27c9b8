"""Stepwise, checked derivations (``gendsl derive`` without ``--brief``).

For the spec at hand, each family's step module writes the chain of :class:`Step` s from the
declaration to each result, each with its justification, a reference and a check that sympy or
numpy runs for this spec (:mod:`gendsl.symbolic.steps.model`); :func:`stepwise` builds and
checks them (with a cache) and :func:`render_steps` prints them as text, Markdown, standalone
LaTeX or a Jupyter notebook.  A step whose check fails raises :class:`CheckFailed`.
"""

from __future__ import annotations

from gendsl.symbolic.steps.build import FAMILIES, fresh_steps, stepwise
from gendsl.symbolic.steps.model import Check, CheckFailed, Outcome, Step, Steps, Topic, run_checks
from gendsl.symbolic.steps.render import STEP_FORMATS, render_steps

__all__ = [
    "FAMILIES",
    "STEP_FORMATS",
    "Check",
    "CheckFailed",
    "Outcome",
    "Step",
    "Steps",
    "Topic",
    "fresh_steps",
    "render_steps",
    "run_checks",
    "stepwise",
]
