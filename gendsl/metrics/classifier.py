"""Small classifiers trained once on a bundled set and cached: the feature spaces of digits-FD and
fontdigits-FD/IS.

A :class:`ClassifierRecipe` names a bundled data set, an architecture with ``features(x)`` (the
penultimate layer) and ``forward(x)`` (logits), and the training settings. The classifier is
trained reproducibly from the recipe's seed (Adam, cross-entropy) and cached in ``$GENDSL_CACHE``
under the recipe's versioned file name (bump the version when the recipe changes).
"""

from __future__ import annotations

import pickle
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from gendsl.cache import cache_folder, write_atomic
from gendsl.data import batches, load_dataset

__all__ = ["ClassifierRecipe", "cached_classifier", "train_classifier"]


@dataclass(frozen=True)
class ClassifierRecipe:
    """How to build, train and cache one classifier."""

    cache_name: str
    """File name in ``$GENDSL_CACHE``, versioned (``digits_classifier_v1.pt``)."""
    data: str
    """The bundled data set it is trained on (its ``train`` split)."""
    build: Callable[[], nn.Module]
    """The architecture: a module with ``features(x)`` and ``forward(x)`` (logits)."""
    steps: int
    batch: int = 128
    lr: float = 1e-3
    seed: int = 0


def train_classifier(recipe: ClassifierRecipe) -> nn.Module:
    """Train ``recipe``'s classifier on its data's training split, reproducibly.

    Initialisation and batches come from ``recipe.seed`` without touching the global RNG; works
    when called under ``no_grad`` (a cache miss inside a metric).
    """
    train = load_dataset(recipe.data)
    with torch.enable_grad(), torch.random.fork_rng(devices=[]):
        torch.manual_seed(recipe.seed)
        model = recipe.build()
        generator = torch.Generator().manual_seed(recipe.seed)
        optimiser = torch.optim.Adam(model.parameters(), lr=recipe.lr)
        stream = batches(train, recipe.batch, generator=generator)
        for _ in range(recipe.steps):
            x, y = next(stream)
            loss = nn.functional.cross_entropy(model(x), y)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
    return model.eval()


def cached_classifier(recipe: ClassifierRecipe, *, retrain: bool = False) -> nn.Module:
    """The cached classifier of ``recipe``; trained and cached atomically on first use (or when
    ``retrain``). A cache file that cannot be read is replaced by a freshly trained classifier."""
    path = cache_folder() / recipe.cache_name
    model = recipe.build()
    if path.exists() and not retrain:
        try:
            model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
            return model.eval()
        except (RuntimeError, EOFError, KeyError, ValueError, pickle.UnpicklingError):
            pass
    model = train_classifier(recipe)
    state: dict[str, Tensor] = model.state_dict()
    write_atomic(path, lambda f: torch.save(state, f))
    return model
