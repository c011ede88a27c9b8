"""The matching family: a probability ``path`` between a source and the data, and a network that
``predict``s its velocity (conditional flow matching).

The derivation and the symbolic checks import sympy (through :mod:`gendsl.symbolic`) when they
run, not when this module is imported.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import TYPE_CHECKING

from gendsl import sampler_registry
from gendsl.families.base import Family
from gendsl.families.embedding_conditions import derive_conditions
from gendsl.families.graph_styles import NOISE, NOISED, PROCESS
from gendsl.frontend import ast

if TYPE_CHECKING:
    from gendsl.ir import CheckedModel
    from gendsl.symbolic.derived import Section
    from gendsl.symbolic.path import PathKernel

__all__ = ["MATCHING", "check_path", "derive", "transport_source"]


def derive(model: CheckedModel, sec: Section) -> PathKernel:
    """The path, its target velocity u_t = d x_t / dt (Lipman et al. 2023; Tong et al. 2024),
    the regression loss and the coupling; returns the path's kernel."""
    import sympy as sp

    from gendsl.symbolic.expr import to_text
    from gendsl.symbolic.path import path_velocity

    pk = path_velocity(model.path, model.lets)
    sec.add("path", f"x_t = {to_text(pk.x_t)}", rf"x_t = {sp.latex(pk.x_t)}")
    sec.add(
        "target velocity",
        f"u_t = d x_t / dt = {to_text(pk.u_t)}  (Lipman et al. 2023; Tong et al. 2024)",
        rf"u_t = {sp.latex(pk.u_t)}",
    )
    sec.add(
        "loss",
        "E_(t, (x0, x1), w) || v_theta(x_t, t) - u_t ||^2  (conditional flow matching)",
        r"\mathbb E\,\|v_\theta(x_t,t) - u_t\|^2",
    )
    coupling = model.couple.coupling.name if model.couple is not None else "independent"
    gap = model.couple.checked.kwargs.get("gap") if model.couple and model.couple.checked else 0
    if gap:
        within = f"each pairing's cost certified within {gap:g} (relative)"
        coupling = f"ot(exact, gap = {gap:g}): {within}"
    sec.add("coupling", f"(x0, x1) ~ {coupling}")
    source = transport_source(model)
    if source is not None:
        sec.add(
            "source",
            f"{source} ~ the empirical distribution of a second data set (--source-data): "
            "data -> data transport, no source density (no likelihood)",
        )
    derive_conditions(model, sec)
    sec.add("sampling", "dx/dt = v_theta(x, t), integrated from t = 0 to 1")
    return pk


def transport_source(model: CheckedModel) -> str | None:
    """The path's source ``x0`` when it is declared ``data`` (a transport between two data sets,
    its samples from a second data set: ``gendsl train --source-data``), else None."""
    path = model.path
    if model.family != "matching" or path is None or not path.target.endswith("_t"):
        return None
    name = path.target[:-2] + "0"
    var = model.variables.get(name)
    return name if var is not None and var.role == "data" else None


def check_path(model: CheckedModel) -> None:
    """The path is linear in its ends and noise, runs from x0 at t = 0 to x1 at t = 1, and its
    noise scale is not negative (raises :class:`~gendsl.errors.SpecError`)."""
    from gendsl.symbolic.path import NOISE as NOISE_NAME
    from gendsl.symbolic.path import path_velocity
    from gendsl.symbolic.positivity import check_path_noise

    kernel = path_velocity(model.path, model.lets, simplify=False)
    check_path_noise(model.path, kernel.t, kernel.gamma, NOISE_NAME)


MATCHING = Family(
    name="matching",
    words="a flow-matching model",
    summary="a probability path",
    recognise=MappingProxyType({"path": ast.Path}),
    derive=derive,
    lower="gendsl.lower.matching:build",
    model_class="gendsl.lower.matching:MatchingModel",
    samplers=tuple(sampler_registry.of_family("matching")),
    predict_example="predict velocity = v(x_t, t)",
    nodes=MappingProxyType({"process": PROCESS, "noised": NOISED, "noise": NOISE}),
    symbolic_check=check_path,
    check="gendsl.analysis.family_rules:check_matching",
)
