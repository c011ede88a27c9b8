"""``loss consistency(teacher = MODEL, init = teacher)``: a distilled consistency model that
starts from its teacher's network.

Song et al. 2023 (Sec. 6) initialise the consistency model with the pre-trained diffusion
model's weights.  That is only meaningful if the student reads its network the way the teacher
does: this pass checks that the student's network ``f`` is declared as the teacher's ``predict``
network and that the two share the forward process, and hands the teacher's ``predict`` to the
back end (:attr:`~gendsl.ir.CheckedModel.teacher_predict`), which builds the consistency function
from the denoiser that network implies (``lower/diffusion_consistency.py``).
"""

from __future__ import annotations

from collections.abc import Callable

from gendsl import ir
from gendsl.analysis.supported import option_span
from gendsl.ir import CheckedModel
from gendsl.source import Span

__all__ = ["starts_from_teacher", "teacher_start"]

Report = Callable[[str, Span], None]


def _net_text(net: ir.NetSpec) -> str:
    options = ", ".join(f"{k} = {v}" for k, v in net.options.items())
    return f"{net.kind}({options})"


def _same_net(a: ir.NetSpec, b: ir.NetSpec) -> bool:
    """The same constructor, hyper-parameters and inferred sizes (so the weights fit)."""
    key = ("kind", "options", "in_shapes", "out_shape", "time", "cond_classes")
    return all(getattr(a, k) == getattr(b, k) for k in key)


def starts_from_teacher(model: CheckedModel) -> bool:
    """Whether ``model`` declares ``loss consistency(..., init = teacher)``."""
    loss = model.loss
    return loss.name == "consistency" and loss.kwargs.get("init", "random") == "teacher"


def teacher_start(
    model: CheckedModel, teacher: CheckedModel | None, report: Report
) -> ir.Predict | None:
    """The teacher's ``predict`` when ``model`` asks to start from its teacher (``init =
    teacher``) and can, else ``None``; what stands in the way is reported at the option.

    ``teacher`` is the checked teacher model (``None`` if the loss names none or it has
    errors of its own, reported where it is checked)."""
    if not starts_from_teacher(model):
        return None
    loss = model.loss
    where = option_span(model, "init")
    if loss.kwargs.get("teacher") is None:
        report(
            "loss consistency: init = teacher needs a teacher to start from; add "
            "teacher = MODEL (consistency distillation) or remove init",
            where,
        )
        return None
    if teacher is None:
        return None
    predict = teacher.predict
    if predict is None or not isinstance(predict.value, ir.Call):
        report(
            f"loss consistency: init = teacher needs a teacher whose predict is a network call "
            f"such as eps(x_t, t); '{teacher.name}' predicts otherwise",
            where,
        )
        return None
    if any(isinstance(a, ir.Name) and a.role == "condition" for a in predict.value.args):
        report(
            f"loss consistency: init = teacher needs an unconditional teacher; "
            f"'{teacher.name}' calls its network on a condition",
            where,
        )
        return None
    consistency = model.predict.value if model.predict is not None else None
    assert isinstance(consistency, ir.Consistency)
    mine = model.nets[consistency.net.id]
    theirs = teacher.nets[predict.value.func]
    if not _same_net(mine, theirs):
        report(
            f"loss consistency: init = teacher copies the teacher's network "
            f"{predict.value.func} = {_net_text(theirs)} into {mine.name}, which is declared "
            f"{_net_text(mine)}; declare {mine.name} as the teacher's network",
            mine.span,
        )
        return None
    if model.process != teacher.process:
        report(
            f"loss consistency: init = teacher needs the teacher's forward process; "
            f"'{model.name}' declares another than '{teacher.name}'",
            where,
        )
        return None
    return predict
