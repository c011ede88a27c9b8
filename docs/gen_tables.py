"""Render the library tables of ``gendsl.analysis.library`` into ``docs/language.md`` and the
sampler registry (``gendsl.sampler_registry``) into ``docs/samplers.md``.

The reference's section "Library tables" and the registry's table are generated: run ``python
docs/gen_tables.py`` (with gendsl importable, e.g. ``PYTHONPATH=.``) after changing
``library.py`` or the registry; ``tests/test_docs.py`` and ``tests/sampling/test_registry.py``
fail while a section is out of date.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from gendsl import sampler_registry
from gendsl.analysis import library
from gendsl.analysis.library import OptionSpec, Param
from gendsl.distributions import DISTRIBUTIONS

__all__ = ["BEGIN", "END", "LANGUAGE_MD", "SAMPLERS_MD", "render", "render_samplers", "splice"]

LANGUAGE_MD = Path(__file__).resolve().parent / "language.md"
SAMPLERS_MD = Path(__file__).resolve().parent / "samplers.md"
BEGIN = "<!-- BEGIN GENERATED: python docs/gen_tables.py -->"
END = "<!-- END GENERATED -->"


def _literal(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + ", ".join(_literal(v) for v in value) + "]"
    return "none" if value is None else str(value)


def _call(spec: OptionSpec) -> str:
    """``min_snr(gamma = 5)``: a call-valued choice with its defaults."""
    inner = ", ".join(f"{k} = {_literal(p.default)}" for k, p in spec.params.items())
    return f"{spec.name}({inner})" if inner else spec.name


def _param(name: str, p: Param) -> str:
    if p.kind == "choice":
        values = [c for c in p.choices if c not in p.calls] + [_call(c) for c in p.calls.values()]
        shown = " \\| ".join(values)
        default = f"; default {_literal(p.default)}" if p.default is not None else ""
        return f"`{name}` = {shown}{default}"
    if p.default is None or p.default == []:
        return f"`{name}` ({p.kind})"
    return f"`{name} = {_literal(p.default)}` ({p.kind})"


def _params(spec: OptionSpec) -> str:
    if not spec.params:
        return "—"
    names = list(spec.params)
    text = "; ".join(_param(k, p) for k, p in spec.params.items())
    if spec.positional:
        text += f" (first {spec.positional} positional: {', '.join(names[: spec.positional])})"
    for alias, name in spec.aliases.items():
        text += f" (`{alias}` also names `{name}`)"
    return text


def _option_table(title: str, specs: Mapping[str, OptionSpec], first_default: bool) -> list[str]:
    rows = [f"| {title} | options (defaults) | meaning |", "| --- | --- | --- |"]
    for i, spec in enumerate(specs.values()):
        mark = " (default)" if first_default and i == 0 else ""
        rows.append(f"| `{spec.name}`{mark} | {_params(spec)} | {spec.doc or '—'} |")
    return rows


def render() -> str:
    """The generated section, from the library tables."""
    out = ["### Types", "", "| type | sizes | meaning |", "| --- | --- | --- |"]
    for t in library.TYPES.values():
        sizes = {None: "one or more", 0: "keywords " + ", ".join(t.keywords)}.get(t.sizes, t.sizes)
        out.append(f"| `{t.name}` | {sizes} | {t.doc} |")
    out += ["", "### Distributions", ""]
    out += ["| distribution | parameters | support | must be > 0 |", "| --- | --- | --- | --- |"]
    for d in DISTRIBUTIONS.values():
        params = ", ".join(d.params) if d.params else " \\| ".join(d.alternatives)
        positive = ", ".join(d.positive) or "—"
        out.append(f"| `{d.name}` | {params} | {d.support} | {positive} |")
    out += ["", "### Functions and constants", ""]
    math = ", ".join(
        f"`{f}`" + ("" if n == 1 else f" ({n} arguments)")
        for f, n in library.MATH_FUNCTIONS.items()
    )
    out.append(f"- math: {math}")
    reductions = ", ".join(
        f"`{f}`" + ("" if n == 1 else f" ({n} arguments)") for f, n in library.REDUCTIONS.items()
    )
    out.append(f"- reductions over the per-sample axes: {reductions}")
    out.append("- constants: " + ", ".join(f"`{c}`" for c in library.CONSTANTS))
    ctor = ", ".join(
        f"`{c}` ({n} argument{'s' * (n > 1)})" for c, n in library.CONSTRUCTORS.items()
    )
    out.append(f"- constant vectors: {ctor}")
    for s in library.SPECIAL_FUNCTIONS.values():
        out.append(f"- `{s.name}`: {s.doc}" + (f"; {_params(s)}" if s.params else ""))
    out += ["", "### Networks", ""]
    out += _option_table("network", library.NETWORKS, False)
    out += ["", "### Flow layers", ""]
    out += _option_table("layer", library.FLOW_LAYERS, False)
    for info in library.FAMILY_INFO.values():
        out += ["", f"### Family `{info.name}`: {info.doc}", ""]
        if info.predicts:
            out += ["Prediction targets: " + ", ".join(f"`{p}`" for p in info.predicts) + ".", ""]
        out += _option_table("loss", info.losses, True)
        out += [""]
        out += _option_table("sampler", info.samplers, True)
    out += ["", "### Couplings", ""]
    out += _option_table("coupling", library.COUPLINGS, False)
    out += ["", "### Guidance", ""]
    out += _option_table("guidance", library.GUIDANCE, False)
    out += ["", "### Train keys", "", "| key | value (default) |", "| --- | --- |"]
    for key, p in library.TRAIN.items():
        out.append(f"| `{key}` | {_param(key, p)} |")
    return "\n".join(out) + "\n"


def render_samplers() -> str:
    """The registry's table: each sampler's family, processes, calls per step, defaults."""
    out = [
        "| sampler | family | runs on | network calls per step | default steps, schedule "
        "| meaning |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for d in sampler_registry.SAMPLERS.values():
        runs_on = ", ".join(sampler_registry.PROCESSES[p] for p in d.processes)
        last = "; the last step 1" if d.final else ""
        if d.fixed_steps is not None:
            steps = f"always {d.fixed_steps}"
        else:
            steps = ", ".join(str(v) for v in (d.default_steps, d.default_schedule) if v)
        out.append(
            f"| `{d.name}` | {d.family} | {runs_on} | {d.calls_text}{last} | {steps or '—'} "
            f"| {d.doc} ({d.cite}) |"
        )
    return "\n".join(out) + "\n"


def splice(text: str, tables: str) -> str:
    """``text`` with the generated section replaced by ``tables``."""
    pattern = re.compile(re.escape(BEGIN) + r".*?" + re.escape(END), re.S)
    if not pattern.search(text):
        raise ValueError(f"no generated section; expected the marker {BEGIN}")
    return pattern.sub(lambda _: f"{BEGIN}\n\n{tables}\n{END}", text)


if __name__ == "__main__":
    LANGUAGE_MD.write_text(splice(LANGUAGE_MD.read_text(), render()))
    SAMPLERS_MD.write_text(splice(SAMPLERS_MD.read_text(), render_samplers()))
    sys.exit(0)
