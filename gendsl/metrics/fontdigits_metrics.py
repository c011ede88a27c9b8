"""fontdigits-FD, fontdigits-IS and precision/recall in the feature space of a small CNN.

FID (Heusel et al. 2017) and the Inception Score (Salimans et al. 2016) use Inception-v3 trained
on ImageNet; for the bundled 28×28 ``fontdigits`` gendsl uses a small convolutional classifier
trained on its training split instead (:data:`RECIPE`: about 99 % test accuracy, trained in under
a minute on one CPU core, cached in ``$GENDSL_CACHE``). The numbers are called **fontdigits-FD**
and **fontdigits-IS**: they rank models on this set and are comparable only to numbers from the
same classifier. Precision and recall (Kynkäänniemi et al. 2019) are computed on the same
features. :func:`real_reference` gives what the real test split scores, to read them against.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from gendsl.data import as_float, load_dataset
from gendsl.errors import UsageError
from gendsl.metrics.classifier import ClassifierRecipe, cached_classifier
from gendsl.metrics.distances import precision_recall
from gendsl.metrics.frechet import fid_from_features
from gendsl.metrics.scores import SplitScore, inception_score, split_count

__all__ = [
    "RECIPE",
    "FontDigitsClassifier",
    "fontdigits_classifier",
    "fontdigits_fd",
    "fontdigits_is",
    "fontdigits_scores",
]

_SHAPE = (1, 28, 28)
_BATCH = 500


class FontDigitsClassifier(nn.Module):
    """``1×28×28 → conv 5×5/2 (16) → conv 5×5/2 (32) → 128 → 10`` with ReLU; :meth:`features`
    is the 128-wide penultimate layer."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(1, 16, 5, stride=2, padding=2),
            nn.ReLU(),
            nn.Conv2d(16, 32, 5, stride=2, padding=2),
            nn.ReLU(),
            nn.Flatten(),
            nn.Linear(32 * 7 * 7, 128),
            nn.ReLU(),
        )
        self.head = nn.Linear(128, 10)

    def features(self, x: Tensor) -> Tensor:
        """Penultimate activations ``[n, 128]`` of images ``[n, 1, 28, 28]`` (or ``[n, 784]``)."""
        return self.body(as_float(x).reshape(x.shape[0], *_SHAPE))

    def forward(self, x: Tensor) -> Tensor:
        """Class logits ``[n, 10]``."""
        return self.head(self.features(x))


RECIPE = ClassifierRecipe(
    "fontdigits_classifier_v1.pt", "fontdigits", FontDigitsClassifier, steps=600
)
"""Adam (lr 1e-3), batches of 128, 600 steps, seed 0."""


def fontdigits_classifier(*, retrain: bool = False) -> FontDigitsClassifier:
    """The cached classifier (trained and cached atomically on first use)."""
    return cached_classifier(RECIPE, retrain=retrain)  # type: ignore[return-value]


def _images(x: Tensor) -> Tensor:
    """Samples as ``float32 [n, 1, 28, 28]`` in [0, 1] (clamped: a model may overshoot)."""
    if x[0].numel() != 784:
        raise UsageError(
            f"fontdigits scores need 28×28 images, got samples of shape {list(x.shape[1:])}"
        )
    return as_float(x).reshape(len(x), *_SHAPE).float().clamp(0.0, 1.0)


@torch.no_grad()
def _outputs(model: FontDigitsClassifier, x: Tensor) -> tuple[Tensor, Tensor]:
    """Features ``[n, 128]`` and class probabilities ``[n, 10]``, in batches."""
    device = next(model.parameters()).device
    features, probs = [], []
    for i in range(0, len(x), _BATCH):
        f = model.features(_images(x[i : i + _BATCH]).to(device))
        features.append(f.cpu())
        probs.append(model.head(f).softmax(dim=1).cpu())
    return torch.cat(features), torch.cat(probs)


def _reference(reference: str | Tensor) -> Tensor:
    return (
        load_dataset("fontdigits", split=reference).x if isinstance(reference, str) else reference
    )


def fontdigits_fd(samples: Tensor, *, reference: str | Tensor = "test") -> float:
    """fontdigits-FD of ``samples`` to ``reference`` (a fontdigits split or images)."""
    model = fontdigits_classifier()
    return fid_from_features(
        _outputs(model, _reference(reference))[0], _outputs(model, samples)[0]
    )


def fontdigits_is(samples: Tensor, *, splits: int = 10) -> SplitScore:
    """fontdigits-IS of ``samples``: :func:`~gendsl.metrics.scores.inception_score` of the
    classifier's class probabilities (at most 10)."""
    return inception_score(_outputs(fontdigits_classifier(), samples)[1], splits=splits)


def fontdigits_scores(
    samples: Tensor, *, reference: str | Tensor = "test", splits: int = 10, k: int = 3
) -> dict[str, float]:
    """fontdigits-FD, fontdigits-IS (mean, standard error) and precision/recall (k-NN, ``k``)
    of ``samples`` against ``reference``, from one pass of the classifier over each set."""
    model = fontdigits_classifier()
    real_features, _ = _outputs(model, _reference(reference))
    fake_features, probs = _outputs(model, samples)
    score = inception_score(probs, splits=split_count(len(probs), splits))
    precision, recall = precision_recall(real_features, fake_features, k=k)
    return {
        "fontdigits_fd": fid_from_features(real_features, fake_features),
        "fontdigits_is": score.mean,
        "fontdigits_is_stderr": score.stderr,
        "fontdigits_precision": precision,
        "fontdigits_recall": recall,
    }
