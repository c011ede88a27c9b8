"""Classifier-based sample scores: the Inception Score and its split statistics."""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import Tensor

from gendsl.errors import UsageError

__all__ = ["MIN_SPLIT_SIZE", "SplitScore", "inception_score", "mean_kl_to_marginal", "split_count"]


class SplitScore(NamedTuple):
    """A score computed on ``splits`` disjoint parts of the samples.

    ``mean`` is the mean over the parts; ``std`` their standard deviation as Salimans et al. (2016)
    and torch-fidelity report it (``ddof = 0``); ``stderr`` the standard error of the mean,
    ``s / √splits`` with the sample standard deviation ``s`` (``ddof = 1``; 0 for one split).
    """

    mean: float
    std: float
    stderr: float
    splits: int


def mean_kl_to_marginal(probs: Tensor) -> Tensor:
    """``E_x KL(p(y|x) ‖ p(y))`` with ``p(y) = E_x p(y|x)``, for class probabilities ``[n, K]``.

    Terms with ``p(y|x) = 0`` contribute 0 (``0 log 0 = 0``).
    """
    probs = probs.double()
    marginal = probs.mean(dim=0, keepdim=True)
    terms = torch.where(probs > 0, probs * (probs.log() - marginal.log()), probs.new_zeros(()))
    return terms.sum(dim=1).mean()


#: The fewest samples a split of the Inception Score holds: each split estimates the marginal
#: p(y) from its own samples, and a split of one sample has p(y) = p(y|x), so IS = 1 whatever
#: the model.
MIN_SPLIT_SIZE = 10


def split_count(n: int, splits: int = 10) -> int:
    """The number of splits for ``n`` samples: ``splits`` (10, as Salimans et al. 2016 and
    torch-fidelity), fewer when a split would hold under :data:`MIN_SPLIT_SIZE` samples."""
    return max(1, min(splits, n // MIN_SPLIT_SIZE))


def inception_score(probs: Tensor, *, splits: int = 10) -> SplitScore:
    """``IS = exp(E_x KL(p(y|x) ‖ p(y)))`` (Salimans et al. 2016, "Improved Techniques for
    Training GANs"), computed on ``splits`` consecutive equal parts of ``probs`` ``[n, K]`` as the
    original code and torch-fidelity do (a remainder of ``n mod splits`` rows is left out).

    It ranges from 1 (every image gets the same class distribution) to ``K`` (confident and
    balanced over the ``K`` classes).
    """
    if probs.ndim != 2 or not 1 <= splits <= len(probs):
        raise UsageError(
            f"inception_score needs probabilities [n, K] and 1 <= splits <= n, got shape "
            f"{list(probs.shape)} and splits = {splits}"
        )
    size = len(probs) // splits
    scores = torch.stack(
        [torch.exp(mean_kl_to_marginal(probs[i * size : (i + 1) * size])) for i in range(splits)]
    )
    std = float(scores.std(correction=0))
    stderr = float(scores.std(correction=1)) / math.sqrt(splits) if splits > 1 else 0.0
    return SplitScore(float(scores.mean()), std, stderr, splits)
