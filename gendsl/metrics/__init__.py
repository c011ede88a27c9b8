"""Evaluation metrics: sample distances (W2, sliced W2, MMD, precision/recall) and Fréchet
distances (FID from any features, digits-FD). Likelihoods through the probability-flow ODE and
bits per dimension live in :mod:`gendsl.metrics.pf_ode`.
"""

from __future__ import annotations

from gendsl.metrics.digits_fd import digits_classifier, digits_fd
from gendsl.metrics.distances import mmd, precision_recall, sliced_w2, w2
from gendsl.metrics.frechet import fid, fid_from_features, frechet_distance

__all__ = [
    "digits_classifier",
    "digits_fd",
    "fid",
    "fid_from_features",
    "frechet_distance",
    "mmd",
    "precision_recall",
    "sliced_w2",
    "w2",
]
