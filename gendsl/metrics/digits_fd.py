"""Digits-FD: a Fréchet distance in the feature space of a small digits classifier.

FID (Heusel et al. 2017) compares Gaussians fitted to Inception-v3 features; for 8×8 digits
gendsl uses the penultimate layer of an MLP classifier trained on the digits training split
instead. The number is called **digits-FD**: it ranks models on digits but is not comparable to
Inception FID or to digits-FD from another classifier. The classifier is trained once with a
fixed seed (a few seconds on a CPU) and cached in ``$GENDSL_CACHE`` (default
``~/.cache/gendsl``).
"""

from __future__ import annotations

from dataclasses import replace

import torch
from torch import Tensor, nn

from gendsl.cache import cache_folder
from gendsl.data import load_dataset
from gendsl.metrics.classifier import ClassifierRecipe, cached_classifier, train_classifier
from gendsl.metrics.frechet import FeatureExtractor, fid

__all__ = [
    "CACHE_NAME",
    "RECIPE",
    "DigitsClassifier",
    "cache_folder",
    "digits_classifier",
    "digits_fd",
    "train_digits_classifier",
]

CACHE_NAME = "digits_classifier_v1.pt"
"""File name of the cached classifier (bump the version when the recipe changes)."""


class DigitsClassifier(nn.Module):
    """MLP ``64 → 256 → 128 → 10`` with ReLU; :meth:`features` is the penultimate layer."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 128), nn.ReLU())
        self.head = nn.Linear(128, 10)

    def features(self, x: Tensor) -> Tensor:
        """Penultimate activations ``[n, 128]`` of digits ``[n, 64]`` or ``[n, 1, 8, 8]``."""
        return self.body(x.reshape(x.shape[0], 64))

    def forward(self, x: Tensor) -> Tensor:
        """Class logits ``[n, 10]``."""
        return self.head(self.features(x))


RECIPE = ClassifierRecipe(CACHE_NAME, "digits", DigitsClassifier, steps=1500)
"""Adam (lr 1e-3), batches of 128, 1500 steps, seed 0 (a few seconds on a CPU)."""


def train_digits_classifier(*, seed: int = RECIPE.seed, steps: int = RECIPE.steps) -> nn.Module:
    """Train the classifier on the digits training split (Adam, cross-entropy), reproducibly."""
    return train_classifier(replace(RECIPE, seed=seed, steps=steps))


def digits_classifier(*, retrain: bool = False) -> nn.Module:
    """The cached classifier; trained and cached atomically on first use (or when ``retrain``).

    A cache file that cannot be read is replaced by a freshly trained classifier.
    """
    return cached_classifier(RECIPE, retrain=retrain)


@torch.no_grad()
def digits_fd(
    samples: Tensor,
    *,
    reference: str | Tensor = "train",
    feature_extractor: FeatureExtractor | None = None,
) -> float:
    """Digits-FD of ``samples`` (``[n, 64]`` or ``[n, 1, 8, 8]``, in ``[0, 1]``) to real digits.

    ``reference`` is a digits split (``"train"``, ``"test"``, ``"all"``) or a tensor of digits.
    ``feature_extractor`` defaults to :meth:`DigitsClassifier.features` of
    :func:`digits_classifier`, moved to the samples' device.
    """
    if isinstance(reference, str):
        reference = load_dataset("digits", split=reference).x
    reference = reference.to(device=samples.device, dtype=samples.dtype)
    if feature_extractor is None:
        feature_extractor = digits_classifier().to(samples.device).features
    return fid(reference, samples, feature_extractor=feature_extractor)
