"""The projection discriminator's head (Miyato & Koyama 2018, "cGANs with Projection
Discriminator", ICLR, eq. 3): D(x, y) = ψ(φ(x)) + embed(y)ᵀ φ(x)."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from gendsl.nn.base import ShapedNet
from gendsl.nn.layers import maybe_spectral_norm

__all__ = ["ProjectionHead", "projection_output"]


def projection_output(phi: Tensor, psi: Tensor, embedded: Tensor) -> Tensor:
    """D(x, y) = ψ(φ(x)) + ⟨embed(y), φ(x)⟩ per sample, [B, 1] (Miyato & Koyama 2018, eq. 3:
    the log density ratio of p(y|x) and q(y|x) for a log-linear p(y|x), plus ψ for the ratio of
    the marginals); ``psi`` is ψ(φ(x)), [B, 1]; ``embedded`` is embed(y), [B, F]."""
    return psi + (embedded * phi).sum(dim=1, keepdim=True)


class ProjectionHead(nn.Module):
    """ψ, a linear map of the features to a number, and embed, a learned vector per class of the
    features' width; ``forward(φ, y)`` is :func:`projection_output`."""

    def __init__(self, width: int, classes: int, *, spectral_norm: bool = False):
        super().__init__()
        self.psi = maybe_spectral_norm(nn.Linear(width, 1), spectral_norm)
        self.embed = maybe_spectral_norm(nn.Embedding(classes, width), spectral_norm)
        self.classes = classes

    @classmethod
    def replacing_label(
        cls, net: ShapedNet, widths: Sequence[int], spectral_norm: bool
    ) -> ProjectionHead:
        """The head of ``net``, which then drops its concatenated label embedding; raises
        ``ValueError`` unless ``net`` takes a label, outputs one number and has a hidden layer."""
        if net.label_embed is None:
            raise ValueError("projection = true needs a label input (call it as D(x, y))")
        if net.out_numel != 1:
            raise ValueError(
                f"projection = true needs a scalar output (a critic), got shape {net.out_shape}"
            )
        if not widths:
            raise ValueError("projection = true needs at least one hidden layer")
        classes = net.label_embed.num_classes
        net.label_embed = None
        return cls(widths[-1], classes, spectral_norm=spectral_norm)

    def forward(self, phi: Tensor, y: Tensor | None) -> Tensor:
        if y is None:
            raise ValueError("a projection discriminator needs the label y")
        y = y.long().reshape(-1)
        if (
            y.device.type == "cpu"
            and y.numel()
            and (int(y.min()) < 0 or int(y.max()) >= self.classes)
        ):
            raise ValueError(
                f"labels must lie in 0..{self.classes - 1}, got values in "
                f"{int(y.min())}..{int(y.max())}"
            )
        return projection_output(phi, self.psi(phi), self.embed(y).to(phi.dtype))
