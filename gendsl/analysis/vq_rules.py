"""The checker's rule for the prior of ``loss vq`` (lowered by :mod:`gendsl.lower.vq_levels`):
``prior = pixelcnn`` models each code level's grid with a 2-D masked convolution, so every
quantised code must form a 2-D grid (a ``ConvNet`` encoder of an image)."""

from __future__ import annotations

from collections.abc import Callable

from gendsl import ir
from gendsl.ir import CheckedModel
from gendsl.source import Span

__all__ = ["check_code_priors"]


def check_code_priors(
    model: CheckedModel, where: Span, report: Callable[[str, Span], None]
) -> None:
    """Report, at ``where`` (the ``prior`` option), each code whose grid a PixelCNN prior cannot
    model."""
    prior = model.loss.kwargs.get("prior") if model.loss.name == "vq" else None
    if not isinstance(prior, ir.Opt) or prior.name != "pixelcnn":
        return
    for a in model.assigns:
        if not isinstance(a.value, ir.Quantize) or not isinstance(a.value.operand, ir.Call):
            continue
        net = model.nets.get(a.value.operand.func)
        if net is None or len(net.out_shape) == 3:
            continue
        shape = ", ".join(map(str, net.out_shape))
        report(
            f"prior = pixelcnn needs a 2-D grid of codes, but '{a.target} = quantize("
            f"{net.name}(...))' gives codes of shape [{shape}]; quantise the output of a "
            "ConvNet encoder of an image, or use prior = uniform",
            where,
        )
