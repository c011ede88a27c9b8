"""Mode collapse on Gaussian mixtures: modes covered and the fraction of high-quality samples.

The benchmark of VEEGAN (Srivastava et al. 2017, "VEEGAN: Reducing Mode Collapse in GANs using
Implicit Variational Learning", NeurIPS, synthetic experiments) and PacGAN (Lin et al. 2018,
"PacGAN: The power of two samples in generative adversarial networks", NeurIPS, synthetic
experiments, and its reference code ``fjxmlzn/PacGAN``) on the 2-D ring of 8
Gaussians and the 5×5 grid of 25 Gaussians: each sample is assigned to its nearest mode; it is
*high quality* if it lies within three standard deviations of that mode; a mode is *covered*
(captured) if at least ``min_count`` high-quality samples are assigned to it — one in the papers
(PacGAN's reference code counts the modes with a non-zero count of high-quality samples).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from gendsl.errors import UsageError

__all__ = ["ModeCoverage", "mode_coverage"]


@dataclass(frozen=True)
class ModeCoverage:
    """The result of :func:`mode_coverage`: per-mode counts of high-quality samples."""

    counts: tuple[int, ...]
    n: int
    min_count: int

    @property
    def covered(self) -> int:
        """The number of modes with at least ``min_count`` high-quality samples."""
        return sum(c >= self.min_count for c in self.counts)

    @property
    def high_quality(self) -> float:
        """The fraction of the samples within the threshold of their nearest mode."""
        return sum(self.counts) / self.n

    def as_metrics(self) -> dict[str, float]:
        """``modes_covered``, ``modes_total`` and ``high_quality_fraction`` for ``eval``."""
        return {
            "modes_covered": float(self.covered),
            "modes_total": float(len(self.counts)),
            "high_quality_fraction": self.high_quality,
        }


def mode_coverage(
    samples: Tensor | np.ndarray,
    centres: Tensor | np.ndarray,
    std: float,
    *,
    threshold: float = 3.0,
    min_count: int = 1,
) -> ModeCoverage:
    """Assign each sample to its nearest centre ``k* = argmin_k ‖x − μ_k‖``; the sample is high
    quality iff ``‖x − μ_k*‖ < threshold · std``; mode ``k`` is covered iff at least
    ``min_count`` high-quality samples are assigned to it (Srivastava et al. 2017;
    Lin et al. 2018).  ``samples [n, D]``, ``centres [K, D]``, isotropic ``std``."""
    x = torch.as_tensor(samples, dtype=torch.float64)
    mu = torch.as_tensor(centres, dtype=torch.float64)
    if x.ndim != 2 or mu.ndim != 2 or x.shape[1] != mu.shape[1] or len(x) == 0:
        raise UsageError(
            f"mode coverage needs samples [n, D] and centres [K, D], got {list(x.shape)} "
            f"and {list(mu.shape)}"
        )
    if not std > 0 or min_count < 1:
        raise UsageError(f"mode coverage needs std > 0 and min_count >= 1, got {std}, {min_count}")
    distance, nearest = torch.cdist(x, mu).min(dim=1)
    good = distance < threshold * std
    counts = torch.bincount(nearest[good], minlength=len(mu))
    return ModeCoverage(tuple(int(c) for c in counts), len(x), min_count)
