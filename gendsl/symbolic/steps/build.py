"""Which steps a model gets (by its family), and :func:`stepwise` with a cache.

The steps of a model depend only on the checked model and on the code that writes and checks
them, so :func:`stepwise` keeps their text and the outcome of every check in the cache folder
(file ``steps.json``), keyed by the derivation's fingerprint
(:func:`gendsl.symbolic.derived.fingerprint`) and the source of this package.  A cached entry
holds no check source: nothing read from the cache is ever executed; the notebook format
(which needs the sources) always builds the steps afresh.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from gendsl.cache import read_json, write_json
from gendsl.ir import CheckedModel
from gendsl.symbolic.derived import fingerprint
from gendsl.symbolic.steps.model import Check, Outcome, Step, Steps, Topic, run_checks

__all__ = ["FAMILIES", "fresh_steps", "stepwise"]

#: The families with stepwise derivations (the others show their summary only).
FAMILIES = ("diffusion", "adversarial", "latent", "flow", "matching", "energy")

_FILE = "steps.json"
_SIZE = 256


def _diffusion(model: CheckedModel) -> tuple[list[str], list[Topic]]:
    from gendsl import ir

    predict = model.predict.kind if model.predict is not None else "eps"
    if isinstance(model.process, ir.SDE):
        from gendsl.symbolic.kernel import sde_kernel
        from gendsl.symbolic.steps.sde import sde_steps

        setup, topics = sde_steps(sde_kernel(model.process, model.lets), predict=predict)
    else:
        from gendsl.symbolic.chain import chain_kernel
        from gendsl.symbolic.steps.chain import chain_steps

        setup, topics = chain_steps(chain_kernel(model.process, model.lets), predict=predict)
    if model.predict is not None and isinstance(model.predict.value, ir.Consistency):
        from gendsl.symbolic.steps.consistency import consistency_topic

        topics = [*topics, consistency_topic(model)]
    return setup, topics


def _adversarial(model: CheckedModel) -> tuple[list[str], list[Topic]]:
    from gendsl.symbolic.steps.adversarial import adversarial_steps

    return adversarial_steps(model)


def _latent(model: CheckedModel) -> tuple[list[str], list[Topic]]:
    from gendsl.symbolic.steps.latent import latent_steps

    return latent_steps(model)


def _flow(model: CheckedModel) -> tuple[list[str], list[Topic]]:
    from gendsl.symbolic.steps.flow import flow_steps

    return flow_steps(model)


def _matching(model: CheckedModel) -> tuple[list[str], list[Topic]]:
    from gendsl.symbolic.steps.matching import matching_steps

    return matching_steps(model)


def _energy(model: CheckedModel) -> tuple[list[str], list[Topic]]:
    from gendsl.symbolic.steps.energy import energy_steps

    return energy_steps(model)


_BUILDERS = {
    "diffusion": _diffusion,
    "adversarial": _adversarial,
    "latent": _latent,
    "flow": _flow,
    "matching": _matching,
    "energy": _energy,
}


def fresh_steps(model: CheckedModel, *, check: bool = True) -> Steps:
    """The steps of ``model``, built now and (unless ``check`` is false) every check run; a
    failing check raises :class:`~gendsl.symbolic.steps.model.CheckFailed`."""
    build = _BUILDERS.get(model.family)
    setup, topics = build(model) if build is not None else ([], [])
    if model.latent_space is not None:
        from gendsl.symbolic.steps.latent_space import latent_space_topic

        topics = [latent_space_topic(model.latent_space), *topics]
    steps = Steps(model.name, model.family, setup, topics)
    if check:
        run_checks(steps)
    return steps


def _key(model: CheckedModel) -> str:
    code = sorted(Path(__file__).parent.glob("*.py"))
    text = "\n\x00".join([fingerprint(model), *(p.read_text(encoding="utf-8") for p in code)])
    return hashlib.sha256(text.encode()).hexdigest()


def _stored(key: str, model: CheckedModel) -> Steps | None:
    entries = read_json(_FILE)
    value = entries.get(key) if isinstance(entries, dict) else None
    try:
        topics = [
            Topic(
                str(t["title"]),
                [
                    Step(*map(str, s[:4]), Check(str(s[4]), "") if s[4] else None)
                    for s in t["steps"]
                ],
            )
            for t in value["topics"]
        ]
        outcomes = [Outcome(str(kind), str(detail)) for kind, detail in value["outcomes"]]
    except (TypeError, KeyError, ValueError, IndexError):
        return None
    if len(outcomes) != sum(len(t.steps) for t in topics):
        return None
    return Steps(model.name, model.family, [], topics, outcomes)


def _store(key: str, steps: Steps) -> None:
    entries = read_json(_FILE)
    entries = dict(entries) if isinstance(entries, dict) else {}
    entries.pop(key, None)
    entries[key] = {
        "topics": [
            {
                "title": t.title,
                "steps": [
                    [
                        s.claim,
                        s.latex,
                        s.justification,
                        s.reference,
                        s.check.kind if s.check else "",
                    ]
                    for s in t.steps
                ],
            }
            for t in steps.topics
        ],
        "outcomes": [[o.kind, o.detail] for o in steps.outcomes or []],
    }
    write_json(_FILE, dict(list(entries.items())[-_SIZE:]))


def stepwise(model: CheckedModel) -> Steps:
    """The checked steps of ``model``, from the cache when this code checked this model before
    (module docstring)."""
    key = _key(model)
    cached = _stored(key, model)
    if cached is not None:
        return cached
    steps = fresh_steps(model)
    _store(key, steps)
    return steps
