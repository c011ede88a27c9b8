"""The step model of a stepwise derivation: each :class:`Step` states a claim about the spec at
hand, names the rule that gives it and the paper, and carries the :class:`Check` that verifies
it for this spec.

A check is a short Python snippet (sympy or numpy) written by gendsl's own step modules, never
taken from a spec or a file: the spec's expressions enter it only through the *setup* lines,
each ``name = sp.sympify("<srepr>")`` (sympy's canonical constructor text) or a numeric literal.
:func:`run_checks` executes the setup once and each check after it; the notebook format writes
the same setup and checks into code cells, so a notebook runs exactly what ``gendsl derive``
ran.  A check fails by raising :class:`AssertionError`; it may set ``detail`` (a short text
with the numbers it compared).  Each check runs in its own copy of the setup's namespace and
must not rebind a setup name, so that running the checks one after another in one namespace
(as a notebook does) computes the same.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from gendsl.errors import GendslError

__all__ = ["Check", "CheckFailed", "Outcome", "Step", "Steps", "Topic", "binding", "run_checks"]

#: What every check may use without importing it.
PRELUDE = "import numpy as np\nimport sympy as sp\n"


@dataclass(frozen=True)
class Check:
    """A check of a step: ``kind`` is ``sympy`` (an identity verified symbolically) or
    ``numeric`` (quadrature, sampling, optimisation); ``source`` is its Python snippet."""

    kind: str
    source: str


@dataclass(frozen=True)
class Step:
    """One step: its claim (plain text and LaTeX), the rule that justifies it, a reference,
    and its check (``None`` for a definition read off the spec)."""

    claim: str
    latex: str
    justification: str
    reference: str = ""
    check: Check | None = None


@dataclass
class Topic:
    """A titled chain of steps, from the declaration to one result."""

    title: str
    steps: list[Step] = field(default_factory=list)

    def step(
        self,
        claim: str,
        latex: str,
        justification: str,
        reference: str = "",
        check: tuple[str, str] | None = None,
    ) -> None:
        """Append a step; ``check`` is ``(kind, source)``."""
        self.steps.append(
            Step(claim, latex, justification, reference, Check(*check) if check else None)
        )


@dataclass(frozen=True)
class Outcome:
    """The result of one step's check: ``kind`` (``given`` when the step has no check) and a
    detail text."""

    kind: str
    detail: str = ""


@dataclass
class Steps:
    """The stepwise derivation of one model: the setup lines binding the spec's expressions and
    numbers, and its topics.  ``outcomes`` (one per step, in order) are filled by
    :func:`run_checks` or read from the cache."""

    model: str
    family: str
    setup: list[str]
    topics: list[Topic]
    outcomes: list[Outcome] | None = None

    def all_steps(self) -> list[tuple[Topic, Step]]:
        """Every (topic, step) in order."""
        return [(topic, step) for topic in self.topics for step in topic.steps]


class CheckFailed(GendslError):
    """A step's check failed: the derivation does not hold for this spec (exit 1)."""


def binding(name: str, value: object) -> str:
    """A setup line binding ``name`` to a sympy expression (by its ``srepr``), a number or a
    list of numbers."""
    import sympy as sp

    if isinstance(value, sp.Basic):
        return f"{name} = sp.sympify({sp.srepr(value)!r})"
    if isinstance(value, list | tuple):
        return f"{name} = np.array([{', '.join(repr(float(v)) for v in value)}])"
    if isinstance(value, bool | int | float | str):
        return f"{name} = {value!r}"
    raise TypeError(f"cannot bind {name} to a {type(value).__name__}")


def run_checks(steps: Steps) -> list[Outcome]:
    """Run every step's check (module docstring); raise :class:`CheckFailed` naming the first
    step whose check fails."""
    namespace: dict[str, object] = {}
    exec(PRELUDE + "\n".join(steps.setup), namespace)  # gendsl's own snippets (module docstring)
    outcomes: list[Outcome] = []
    for topic, step in steps.all_steps():
        if step.check is None:
            outcomes.append(Outcome("given"))
            continue
        scope = dict(namespace)
        try:
            exec(step.check.source, scope)  # gendsl's own snippets (module docstring)
        except AssertionError as err:
            raise CheckFailed(
                f"{steps.model}: the step '{step.claim}' ({topic.title}) fails its "
                f"{step.check.kind} check: {err or 'assertion failed'}"
            ) from None
        rebound = sorted(k for k in namespace if scope[k] is not namespace[k])
        if rebound:  # a notebook runs the checks one after another in one namespace
            raise CheckFailed(
                f"{steps.model}: the check of the step '{step.claim}' rebinds the setup's "
                f"{', '.join(rebound)}"
            )
        outcomes.append(Outcome(step.check.kind, str(scope.get("detail", ""))))
    steps.outcomes = outcomes
    return outcomes
