"""Evaluation metrics: sample distances (W2, sliced W2, MMD, precision/recall), Fréchet
distances (FID from any features, digits-FD, fontdigits-FD) and the Inception Score
(fontdigits-IS). Likelihoods through the probability-flow ODE and bits per dimension live in
:mod:`gendsl.metrics.pf_ode`.
"""

from __future__ import annotations

from gendsl.metrics.digits_fd import digits_classifier, digits_fd
from gendsl.metrics.distances import mmd, precision_recall, sliced_w2, w1, w2
from gendsl.metrics.fontdigits_metrics import fontdigits_fd, fontdigits_is, fontdigits_scores
from gendsl.metrics.frechet import fid, fid_from_features, frechet_distance
from gendsl.metrics.scores import SplitScore, inception_score

__all__ = [
    "SplitScore",
    "digits_classifier",
    "digits_fd",
    "fid",
    "fid_from_features",
    "fontdigits_fd",
    "fontdigits_is",
    "fontdigits_scores",
    "frechet_distance",
    "inception_score",
    "mmd",
    "precision_recall",
    "sliced_w2",
    "w1",
    "w2",
]
