"""Steps for a consistency model (``predict x0 = consistency(f, sigma_data = s)``): the
parameterisation and its boundary condition, the probability-flow ODE in the σ variable that
distillation steps along, and, with ``init = teacher``, how the student reads its teacher's
network.

References: Song, Dhariwal, Chen & Sutskever 2023, "Consistency Models" (eq. 3-5, Sec. 6,
appendix C); Karras, Aittala, Aila & Laine 2022, "Elucidating the Design Space of
Diffusion-Based Generative Models" (eq. 4, Table 1).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gendsl.symbolic.steps.model import Topic

if TYPE_CHECKING:
    from gendsl.ir import CheckedModel

__all__ = ["consistency_topic"]

REF = "Song et al. 2023, eq. 5 and appendix C"

BOUNDARY = """
cm_sg, cm_lo, cm_sd = sp.symbols("sigma sigma_min sigma_data", positive=True)
cm_y, cm_F = sp.symbols("y F", real=True)
cm_skip = cm_sd**2 / ((cm_sg - cm_lo) ** 2 + cm_sd**2)
cm_out = cm_sd * (cm_sg - cm_lo) / sp.sqrt(cm_sd**2 + cm_sg**2)
cm_f = cm_skip * cm_y + cm_out * cm_F
assert sp.simplify(cm_f.subs(cm_sg, cm_lo) - cm_y) == 0
detail = "c_skip(sigma_min) = 1, c_out(sigma_min) = 0: f(y, sigma_min) = y for every F"
"""

PF_ODE = """
# N(0, sd^2) data: p_sigma = N(0, sd^2 + sigma^2), D(y, sigma) = sd^2/(sd^2 + sigma^2) y; the
# PF-ODE path y(sigma) = y_1 sqrt((sd^2 + sigma^2)/(sd^2 + sigma_1^2)) solves
# dy/dsigma = (y - D)/sigma
cm_sg, cm_s1, cm_sd = sp.symbols("sigma sigma_1 sigma_data", positive=True)
cm_y1 = sp.Symbol("y_1", real=True)
cm_path = cm_y1 * sp.sqrt((cm_sd**2 + cm_sg**2) / (cm_sd**2 + cm_s1**2))
cm_D = cm_sd**2 / (cm_sd**2 + cm_sg**2) * cm_path
cm_score = -cm_path / (cm_sd**2 + cm_sg**2)
assert sp.simplify(sp.diff(cm_path, cm_sg) - (cm_path - cm_D) / cm_sg) == 0
assert sp.simplify((cm_path - cm_D) / cm_sg + cm_sg * cm_score) == 0  # = -sigma score
detail = "the Gaussian path solves dy/dsigma = -sigma score = (y - D)/sigma"
"""

INIT = """
cm_sg, cm_lo, cm_sd = sp.symbols("sigma sigma_min sigma_data", positive=True)
cm_y, cm_D = sp.symbols("y D", real=True)
cm_skip = cm_sd**2 / ((cm_sg - cm_lo) ** 2 + cm_sd**2)
cm_out = cm_sd * (cm_sg - cm_lo) / sp.sqrt(cm_sd**2 + cm_sg**2)
cm_edm_skip = cm_sd**2 / (cm_sg**2 + cm_sd**2)
cm_edm_out = cm_sg * cm_sd / sp.sqrt(cm_sg**2 + cm_sd**2)
cm_F = (cm_D - cm_edm_skip * cm_y) / cm_edm_out  # the EDM network of the denoiser D
cm_used = cm_skip * cm_y + (cm_sg - cm_lo) / cm_sg * (cm_D - cm_edm_skip * cm_y)
assert sp.simplify(cm_skip * cm_y + cm_out * cm_F - cm_used) == 0
assert sp.simplify(cm_used.subs(cm_lo, 0) - cm_D) == 0
assert sp.simplify(cm_used.subs(cm_sg, cm_lo) - cm_y) == 0
detail = "c_out/c_out_edm = (sigma - sigma_min)/sigma; f = D at sigma_min = 0, f = y at sigma_min"
"""


def consistency_topic(model: CheckedModel) -> Topic:
    """The consistency parameterisation of ``model`` (its ``predict`` is ``consistency``)."""
    from gendsl import ir

    value = model.predict.value if model.predict is not None else None
    assert isinstance(value, ir.Consistency)
    net, sd = value.net.id, value.sigma_data
    teacher = model.loss.kwargs.get("teacher") if model.loss.name == "consistency" else None
    topic = Topic("the consistency function")
    network = (
        "F"
        if model.teacher_predict is not None  # read the teacher's way (the last step)
        else f"{net}(c_in(sigma) y, ln(sigma)/4)"
    )
    topic.step(
        f"f(y, sigma) = c_skip(sigma) y + c_out(sigma) {network} on "
        f"y = x_t / a_t = x0 + sigma eps, sigma = s_t/a_t, with c_skip = {sd}^2 / ((sigma - "
        f"sigma_min)^2 + {sd}^2), c_out = {sd} (sigma - sigma_min) / sqrt({sd}^2 + sigma^2): "
        "f(y, sigma_min) = y whatever the network",
        r"f(y,\sigma) = c_\mathrm{skip}(\sigma)\,y + c_\mathrm{out}(\sigma)\,F_\theta,\quad "
        r"f(y,\sigma_\min) = y",
        "c_skip(sigma_min) = 1 and c_out(sigma_min) = 0: the boundary condition holds by "
        "construction",
        REF,
        ("sympy", BOUNDARY),
    )
    if teacher is not None:
        topic.step(
            f"distillation target: y_hat = one step of {teacher}'s probability-flow ODE "
            "dy/dsigma = -sigma grad log p_sigma(y) = (y - D(y, sigma))/sigma from sigma_(n+1) "
            "to sigma_n; loss d(f(y_(n+1), sigma_(n+1)), f_ema(y_hat, sigma_n))",
            r"\frac{dy}{d\sigma} = -\sigma\nabla_y\log p_\sigma(y) = "
            r"\frac{y - D(y,\sigma)}{\sigma}",
            "the PF-ODE of x_t = a_t x0 + s_t eps in the variable y = x_t/a_t (Karras et al. "
            "2022, eq. 4 with sigma(t) = t) and Tweedie's D = y + sigma^2 grad log p_sigma",
            "Song et al. 2023, eq. 3 and Algorithm 2; Karras et al. 2022, eq. 4",
            ("sympy", PF_ODE),
        )
    if model.teacher_predict is not None:
        kind = model.teacher_predict.kind
        topic.step(
            f"init = teacher: {net} starts as {teacher}'s network and is read as its "
            f"'predict {kind}': D(y, sigma) = the x0 it implies at x_t = a_t y, t = t(sigma); "
            "f = c_skip y + (sigma - sigma_min)/sigma (D - c_skip_edm y), so f = y at "
            "sigma_min and f -> D, the teacher's one-step denoiser, as sigma_min -> 0",
            r"f = c_\mathrm{skip}\,y + \tfrac{\sigma-\sigma_\min}{\sigma}\left(D - "
            r"\tfrac{\sigma_d^2}{\sigma^2+\sigma_d^2}\,y\right)",
            "D = c_skip_edm y + c_out_edm F (Karras et al. 2022, Table 1) gives F; "
            "c_out / c_out_edm = (sigma - sigma_min)/sigma",
            "Song et al. 2023, Sec. 6; Karras et al. 2022, Table 1",
            ("sympy", INIT),
        )
    return topic
