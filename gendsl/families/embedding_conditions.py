"""The derivation lines of embedding conditions (``condition c : real[E]`` or ``real[L, E]``)
given to a diffusion model's predict network: how the network reads them (cross-attention,
Rombach et al. 2022, eq. 3; or the time embedding / concatenation) and, under
``guidance classifier_free``, the guided prediction against the learned null embedding
(Ho & Salimans 2022, eq. 6)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from gendsl import ir

if TYPE_CHECKING:
    from gendsl.ir import CheckedModel, NetSpec
    from gendsl.symbolic.derived import Section

__all__ = ["derive_conditions"]


def _reading(net: NetSpec | None, shape: tuple) -> str:
    """How the network ``net`` reads a real condition of ``shape``."""
    if net is not None and len(shape) == 2 and net.options.get("cross_attention"):
        at = net.options["cross_attention"]
        return (
            f"cross-attention in {net.name} at resolutions {at}: softmax(Q K^T / sqrt(d)) V, "
            "Q from the feature map, K and V from the tokens of the condition "
            "(Rombach et al. 2022, eq. 3)"
        )
    if net is not None and net.kind == "MLP" and net.options.get("film") is True:
        return (
            f"modulates {net.name} by FiLM, (1 + gamma(c)) h + beta(c) in every hidden layer "
            "(Perez et al. 2018)"
        )
    if net is not None and net.kind == "UNet":
        return f"joins the t embedding of {net.name}, added in every residual block"
    return "concatenated with the network's other inputs"


def derive_conditions(model: CheckedModel, sec: Section) -> None:
    """One line per real condition of the predict network, and the guided prediction."""
    call = model.predict.value if model.predict is not None else None
    if not isinstance(call, ir.Call):
        return
    given = {a.id for a in call.args if isinstance(a, ir.Name)}
    real = [v for v in model.condition_vars() if v.type.kind == "real" and v.name in given]
    net = model.nets.get(call.func)
    for var in real:
        dims = ", ".join(str(d) for d in var.type.shape)
        sec.add(f"condition {var.name}", f"real[{dims}]: {_reading(net, var.type.shape)}")
    opt = model.guidance.value if model.guidance is not None else None
    labels = [v for v in model.condition_vars() if v.type.kind == "label" and v.name in given]
    if real and not labels and opt is not None and opt.name == "classifier_free":
        w, p = opt.kwargs.get("scale", 3.0), opt.kwargs.get("drop", 0.1)
        c = real[0].name
        sec.add(
            "guidance",
            f"eps~ = (1 + w) eps(x_t, t, {c}) - w eps(x_t, t, null) with w = {w}; null is a "
            f"learned null embedding that replaces {c} with probability {p} in training "
            "(Ho & Salimans 2022, eq. 6)",
            rf"\tilde\epsilon = (1 + w)\,\epsilon(x_t, t, {c}) - w\,\epsilon(x_t, t, \varnothing)",
        )
