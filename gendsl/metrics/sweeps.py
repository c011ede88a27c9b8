"""Trade-off sweeps of a trained run: sample quality against the number of network evaluations
(NFE) for every sampler the model declares, and against a guided model's guidance scale.

Each sweep returns rows (plain dicts) that :func:`rows_table` prints as a Markdown table and
:func:`plot_rows` draws as a PNG (matplotlib, Agg back end), one line per group.

* NFE trade-off: for every sampler of :mod:`gendsl.sampler_registry` that runs on the model's
  process, at each NFE budget, the most steps within the budget
  (:func:`gendsl.sampler_registry.steps_for_nfe`); an adaptive ODE solver is swept through the
  fixed-step solvers instead, a sampler whose count is not fixed (torchsde) is left out.  Each
  row gives the budget, the steps, the evaluations the model counted (``nfe``) and the
  registry's count (``nfe_declared``), and W2 to held-out data (Karras et al. 2022, Fig. 2; Lu
  et al. 2022 plot FID against NFE the same way).
* Guidance trade-off: FD-like sample distance (W2; digits-FD on digits) and precision/recall
  (Kynkäänniemi et al. 2019) against the guidance scale w (Ho & Salimans 2022, Fig. 4: FID
  against IS as w grows; precision rises and recall falls).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from gendsl import sampler_registry as registry
from gendsl.errors import UsageError
from gendsl.metrics.distances import precision_recall, w2

__all__ = ["guidance_sweep", "nfe_sweep", "plot_rows", "rows_table", "sweep_variants"]

Variant = tuple[str, registry.SamplerDecl, dict[str, Any]]
Extra = Callable[[Tensor, Tensor], dict[str, float]]


def _kinds(model: Any) -> tuple[str, tuple[str, ...]]:
    """The registry family and processes of ``model``'s samplers."""
    if model.family == "diffusion":
        return "diffusion", tuple(model.sampler_kinds())
    if model.family == "matching":
        return "matching", ("path",)
    raise UsageError(
        f"--nfe-sweep applies to diffusion and matching runs (their samplers take steps); "
        f"model {model.checked.name} is {model.family}"
    )


def sweep_variants(model: Any) -> list[Variant]:
    """``(label, declaration, options)`` of every sampler the model's process declares, with
    an adaptive ODE solver replaced by each fixed-step solver; samplers whose network
    calls are not fixed (torchsde's) are left out."""
    family, kinds = _kinds(model)
    variants: list[Variant] = []
    for name, decl in registry.of_family(family).items():
        if not set(decl.processes) & set(kinds):
            continue
        if decl.calls(decl.defaults()) is not None:
            variants.append((name, decl, {}))
        elif "solver" in decl.options:
            fixed = [
                s
                for s in decl.options["solver"].choices
                if decl.calls({**decl.defaults(), "solver": s}) is not None
            ]
            variants.extend((f"{name}({s})", decl, {"solver": s}) for s in fixed)
    return variants


def _min_steps(decl: registry.SamplerDecl) -> int:
    """The fewest steps the sampler takes: its final Tweedie step needs one before it."""
    return decl.final + 1


def nfe_sweep(
    model: Any,
    real: Tensor,
    budgets: Sequence[int],
    *,
    seed: int,
    samplers: Sequence[str] | None = None,
    extra: Extra | None = None,
) -> list[dict[str, Any]]:
    """One row per (sampler, budget) the sampler can meet: ``len(real)`` samples drawn with
    the most steps whose NFE is within the budget, W2 to ``real`` (see the module docstring);
    ``extra(fake, real)`` adds metrics (e.g. digits-FD).  ``samplers`` keeps only those
    labels."""
    variants = sweep_variants(model)
    if samplers:
        known = [label for label, _, _ in variants]
        unknown = sorted(set(samplers) - set(known))
        if unknown:
            raise UsageError(
                f"--samplers: {', '.join(unknown)} not swept on this model; it has "
                f"{', '.join(known)}"
            )
        variants = [v for v in variants if v[0] in samplers]
    flat = real.reshape(len(real), -1).float()
    rows = []
    for label, decl, options in variants:
        for budget in budgets:
            steps = registry.steps_for_nfe(decl, budget, options)
            if steps is None or steps < _min_steps(decl):
                continue
            fake = _draw(model, len(real), seed, method=decl.name, steps=steps, **options)
            fake = fake.reshape(len(fake), -1).float()
            row = {"sampler": label, "budget": budget, "steps": steps, "nfe": model.last_nfe}
            row.update(nfe_declared=registry.nfe(decl, steps, options), w2=w2(fake, flat))
            if extra is not None:
                row.update(extra(fake, flat))
            rows.append(row)
    return rows


def _draw(model: Any, n: int, seed: int, **opts: Any) -> Tensor:
    generator = torch.Generator(device=model.like.device).manual_seed(seed)
    with torch.no_grad():
        return model.sample(n, generator=generator, **opts).detach().cpu()


def guidance_sweep(
    model: Any,
    real: Tensor,
    conditions: Mapping[str, Tensor],
    scales: Sequence[float],
    *,
    seed: int,
    extra: Extra | None = None,
) -> list[dict[str, Any]]:
    """One row per guidance scale w: W2, precision and recall of ``len(real)`` samples drawn
    for the held-out ``conditions`` against ``real`` (``extra(fake, real)`` adds metrics, e.g.
    digits-FD).  The model's own scale is restored afterwards."""
    if model.guidance_scale is None:
        raise UsageError(
            f"--guidance-sweep applies to guided models (classifier_free, classifier); "
            f"model {model.checked.name} has no guidance scale"
        )
    if not conditions:
        raise UsageError("--guidance-sweep needs a run conditioned on the data's labels")
    declared = model.guidance_scale
    flat = real.reshape(len(real), -1).float()
    rows = []
    try:
        for scale in scales:
            model.guidance_scale = float(scale)
            fake = _draw(model, len(real), seed, y=dict(conditions))
            fake = fake.reshape(len(fake), -1).float()
            precision, recall = precision_recall(flat, fake)
            row = {"guidance_scale": float(scale), "w2": w2(fake, flat)}
            row.update(precision=precision, recall=recall)
            if extra is not None:
                row.update(extra(fake, flat))
            rows.append(row)
    finally:
        model.guidance_scale = declared
    return rows


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.4g}"
    return str(value)


def rows_table(rows: Sequence[Mapping[str, Any]]) -> str:
    """The rows as a Markdown table, columns in the first row's order."""
    if not rows:
        return "(no rows)"
    keys = list(rows[0])
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join(_cell(r.get(k)) for k in keys) + " |" for r in rows]
    return "\n".join(lines)


def plot_rows(
    rows: Sequence[Mapping[str, Any]],
    path: str | Path,
    *,
    x: str,
    ys: Sequence[str],
    group: str | None = None,
    title: str = "",
    log_x: bool = False,
    log_y: bool = False,
    ticks: Sequence[float] | None = None,
) -> None:
    """A PNG with one panel per ``ys`` column against ``x``, one line per ``group`` value
    (log axes with ``log_x`` / ``log_y``; ``ticks`` labels those ``x`` values)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    width = 6.5 if group else 4.2
    fig, axes = plt.subplots(1, len(ys), figsize=(width * len(ys), 3.6), squeeze=False)
    groups = sorted({r[group] for r in rows}, key=str) if group else [None]
    for ax, y in zip(axes[0], ys, strict=True):
        for g in groups:
            part = [r for r in rows if group is None or r[group] == g]
            ax.plot([r[x] for r in part], [r[y] for r in part], marker="o", ms=3, label=g)
        ax.set_xlabel(x)
        ax.set_ylabel(y)
        if log_x:
            ax.set_xscale("log")
        if ticks is not None:
            ax.set_xticks(list(ticks), [f"{t:g}" for t in ticks])
            ax.minorticks_off()
        if log_y:
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
    if group:
        axes[0][-1].legend(fontsize=7, loc="center left", bbox_to_anchor=(1.02, 0.5))
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
