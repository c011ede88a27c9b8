"""The diffusion family: a forward noising process (``sde`` or ``chain``) and a network that
``predict``s eps, x0, v or the score.

The derivation and the symbolic checks import sympy (through :mod:`gendsl.symbolic`) when they
run, not when this module is imported.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from gendsl import ir, sampler_registry
from gendsl.families.base import Family
from gendsl.families.embedding_conditions import derive_conditions
from gendsl.families.graph_styles import NOISED, PROCESS
from gendsl.families.text import opt_text, option
from gendsl.frontend import ast
from gendsl.ir import Opt

if TYPE_CHECKING:
    from gendsl.ir import CheckedModel
    from gendsl.symbolic.chain import ChainKernel
    from gendsl.symbolic.derived import Section
    from gendsl.symbolic.kernel import Kernel

__all__ = ["DIFFUSION", "check_process", "derive"]


_TARGETS = {
    "eps": ("eps", r"\epsilon", "eps_hat(x_t, t)", r"\hat\epsilon_\theta(x_t, t)"),
    "x0": ("x0", "x_0", "x0_hat(x_t, t)", r"\hat x_{0,\theta}(x_t, t)"),
    "v": (
        "a(t) eps - s(t) x0",
        r"a(t)\epsilon - s(t)x_0",
        "v_hat(x_t, t)",
        r"\hat v_\theta(x_t, t)",
    ),
    "score": ("-eps / s(t)", r"-\epsilon / s(t)", "score_hat(x_t, t)", r"\hat s_\theta(x_t, t)"),
}

_WEIGHTS = {
    "none": ("lambda(t) = 1", r"\lambda(t) = 1"),
    "likelihood": (
        "lambda(t) = g(t)^2 (on the score form; Song et al. 2021b, likelihood weighting)",
        r"\lambda(t) = g(t)^2",
    ),
    "sigma2": ("lambda(t) = s(t)^2 (on the score form; Song et al. 2021)", r"\lambda(t) = s(t)^2"),
    "min_snr": (
        "lambda(t) = min(SNR(t), gamma) on the x0 form (Hang et al. 2023)",
        r"\lambda(t) = \min(\mathrm{SNR}(t), \gamma)",
    ),
}


def _sde(model: CheckedModel, sec: Section) -> Kernel:
    from gendsl.symbolic.kernel import sde_kernel

    k = sde_kernel(model.process, model.lets)
    x = k.var
    sec.add(
        "forward SDE",
        f"d{x} = f(t) {x} dt + g(t) dw,  t in [0, {k.T:g}]",
        rf"d{x} = f(t)\,{x}\,dt + g(t)\,dw",
    )
    sec.expr("drift", "f(t)", k.f)
    sec.expr("diffusion", "g(t)", k.g)
    sec.add(
        "kernel",
        f"{x}_t | {x}_0 ~ N(a(t) {x}_0, s(t)^2 I)  (Sarkka & Solin 2019, ch. 6)",
        rf"{x}_t \mid {x}_0 \sim \mathcal N(a(t)\,{x}_0,\; s(t)^2 I)",
    )
    if k.a is not None:
        sec.expr("mean scale", "a(t) = exp(int_0^t f)", k.a, r"a(t) = e^{\int_0^t f}")
    else:
        sec.add("mean scale", "a(t) = exp(int_0^t f(u) du)  (no closed form: quadrature)")
    if k.s2 is not None:
        sec.expr("variance", "s(t)^2", k.s2)
        sec.expr(
            "log-SNR",
            "lambda(t) = log(a^2/s^2)",
            k.log_snr,
            r"\lambda(t) = \log\frac{a(t)^2}{s(t)^2}",
        )
    else:
        sec.add("variance", "s(t)^2 = a(t)^2 int_0^t g(u)^2 / a(u)^2 du  (quadrature)")
    names = {"vp": "VP SDE", "subvp": "sub-VP SDE", "ve": "VE SDE"}
    if k.kind in names:
        params = ", ".join(f"{n} = {v:.6g}" for n, v in k.params.items())
        sec.add("recognised", f"{names[k.kind]} of Song et al. 2021 ({params})")
    sec.add(
        "reverse SDE",
        "dx = [f(t) x - g(t)^2 grad_x log p_t(x)] dt + g(t) dw_bar "
        "(Anderson 1982; Song et al. 2021, eq. 6)",
        r"dx = [f(t)x - g(t)^2\nabla_x\log p_t(x)]\,dt + g(t)\,d\bar w",
    )
    sec.add(
        "probability-flow ODE",
        "dx/dt = f(t) x - 1/2 g(t)^2 grad_x log p_t(x) (Song et al. 2021, eq. 13)",
        r"\frac{dx}{dt} = f(t)x - \tfrac12 g(t)^2\nabla_x\log p_t(x)",
    )
    return k


def _chain(model: CheckedModel, sec: Section) -> ChainKernel:
    from gendsl.symbolic.chain import chain_kernel

    kernel = chain_kernel(model.process, model.lets)
    sec.expr("schedule", "beta_k", kernel.beta, r"\beta_k")
    sec.add(
        "marginal",
        kernel.marginal_text + "  (Ho et al. 2020, eq. 4)",
        r"q(x_k\mid x_0) = \mathcal N(\sqrt{\bar\alpha_k}x_0, (1-\bar\alpha_k)I),\ "
        r"\bar\alpha_k = \prod_{i\le k}(1-\beta_i)",
    )
    sec.add(
        "values",
        f"K = {kernel.K}, abar_1 = {kernel.alpha_bar[0]:.6g}, "
        f"abar_K = {kernel.alpha_bar[-1]:.6g}",
    )
    return kernel


def _loss(model: CheckedModel, sec: Section) -> None:
    kind = model.predict.kind if model.predict is not None else "eps"
    target, target_tex, net, net_tex = _TARGETS.get(kind, _TARGETS["eps"])
    loss = model.loss
    if loss.name == "ddpm":
        sec.add(
            "loss L_simple",
            f"E_(k, x0, eps) || {net} - eps ||^2, x_k = sqrt(abar_k) x0 "
            "+ sqrt(1 - abar_k) eps  (Ho et al. 2020, eq. 14)",
            rf"\mathbb E\,\|{net_tex} - \epsilon\|^2",
        )
    elif loss.name == "dsm":
        sec.add(
            "loss (DSM)",
            f"E_(t, x0, eps) lambda(t) || {net} - {target} ||^2 with x_t = "
            "a(t) x0 + s(t) eps, eps ~ N(0, I)  (Vincent 2011; Song et al. 2021, eq. 7)",
            rf"\mathbb E\,\lambda(t)\,\|{net_tex} - {target_tex}\|^2,\ "
            r"x_t = a(t)x_0 + s(t)\epsilon",
        )
        weight = option(loss, "weight", "none")
        weight = weight.name if isinstance(weight, Opt) else str(weight)
        text, tex = _WEIGHTS.get(weight, _WEIGHTS["none"])
        sec.add("weighting", text, tex)
    else:
        sec.add("loss", f"{opt_text(loss)} on the {kind}-parameterised network")


def derive(model: CheckedModel, sec: Section) -> Any:
    """The forward process (the SDE's Gaussian kernel, reverse SDE and probability-flow ODE, or
    the chain's marginal) and the loss on the network's parameterisation; returns the kernel."""
    is_sde = isinstance(model.process, ir.SDE)
    kernel = _sde(model, sec) if is_sde else _chain(model, sec)
    _loss(model, sec)
    derive_conditions(model, sec)
    return kernel


def check_process(model: CheckedModel) -> None:
    """The sde is affine in x with an x-free, positive diffusion and dt/dw terms over a time
    range; the chain is a variance-preserving Gaussian AR(1) step (raises
    :class:`~gendsl.errors.SpecError`)."""
    if isinstance(model.process, ir.SDE):
        from gendsl.symbolic.kernel import check_sde
        from gendsl.symbolic.positivity import check_sde_diffusion

        check_sde_diffusion(model.process, *check_sde(model.process, model.lets))
    elif isinstance(model.process, ir.Chain):
        from gendsl.symbolic.chain import chain_kernel

        chain_kernel(model.process, model.lets, simplify=False)


DIFFUSION = Family(
    name="diffusion",
    words="a diffusion model",
    summary="a forward noising process (sde or chain)",
    recognise=MappingProxyType({"sde": ast.SDE, "chain": ast.Chain}),
    derive=derive,
    lower="gendsl.lower.diffusion:build",
    model_class="gendsl.lower.diffusion_core:DiffusionModel",
    samplers=tuple(sampler_registry.of_family("diffusion")),
    predict_example="predict eps = eps(x_t, t)",
    nodes=MappingProxyType({"process": PROCESS, "noised": NOISED}),
    symbolic_check=check_process,
    check="gendsl.analysis.family_rules:check_diffusion",
)
