"""The :class:`Dataset` record, shuffled mini-batches, a held-out split, and binarisation.

8-bit images stay ``uint8`` in memory (a quarter of the float size, on the GPU too) and become
``float32`` values ``k/255`` one batch at a time, by :func:`as_float`, on whatever device the
batch is on.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace

import numpy as np
import torch

from gendsl.errors import UsageError

IMAGE_LEVELS = 256
"""Quantisation levels of 8-bit images."""


def as_float(x: torch.Tensor) -> torch.Tensor:
    """``float32`` values ``k/255`` of 8-bit images ``k`` (``uint8``); any other tensor as is.

    The conversion runs where ``x`` is, so a batch moved to the GPU as ``uint8`` is converted
    there.
    """
    return x.to(torch.float32).div_(IMAGE_LEVELS - 1) if x.dtype == torch.uint8 else x


__all__ = [
    "IMAGE_LEVELS",
    "Dataset",
    "as_float",
    "batches",
    "binarize_stochastic",
    "binarize_threshold",
    "from_arrays",
    "holdout",
    "holdout_index",
    "random_hflip",
]


@dataclass(frozen=True)
class Dataset:
    """Samples ``x`` ``[n, *shape]`` with optional integer labels ``y`` ``[n]`` and optional
    real conditions ``c`` ``[n, ...]`` (embeddings, from an ``.npz``'s ``c``).

    ``x`` is ``float32``, or ``uint8`` for 8-bit images (values ``k`` standing for ``k/255``,
    ``levels`` 256): convert batches with :func:`as_float`.

    ``kind`` is ``"image"`` when each sample is ``[C, H, W]``, else ``"binary"`` when every value
    is 0 or 1, else ``"real"``. ``num_classes`` is ``None`` without labels.  ``levels`` is the
    number of quantisation levels of data stored as k/(levels - 1) in [0, 1] (17 for the 8×8
    digits, 256 for 8-bit images), ``None`` for continuous or binary data: likelihoods of such
    data are reported for the uniformly dequantised data (Theis et al. 2016).
    """

    x: torch.Tensor
    y: torch.Tensor | None
    name: str
    kind: str
    shape: tuple[int, ...]
    num_classes: int | None
    levels: int | None = None
    c: torch.Tensor | None = None

    def __len__(self) -> int:
        return self.x.shape[0]

    def to(self, device: torch.device | str) -> Dataset:
        """The same data on ``device``."""
        y, c = (None if a is None else a.to(device) for a in (self.y, self.c))
        return replace(self, x=self.x.to(device), y=y, c=c)

    def subset(self, index: torch.Tensor) -> Dataset:
        """The samples at ``index`` (a 1-D integer tensor), keeping name, kind and classes."""
        index = index.to(self.x.device)
        y, c = (None if a is None else a[index] for a in (self.y, self.c))
        return replace(self, x=self.x[index], y=y, c=c)


def from_arrays(
    x: np.ndarray,
    y: np.ndarray | None,
    name: str,
    *,
    num_classes: int | None = None,
    levels: int | None = None,
    c: np.ndarray | None = None,
) -> Dataset:
    """A :class:`Dataset` of CPU tensors; ``kind`` is inferred, ``num_classes`` defaults to
    ``max(y) + 1``. A ``uint8`` ``x`` stays ``uint8`` (8-bit intensities, ``levels`` 256)."""
    if x.dtype == np.uint8:
        tx = torch.from_numpy(np.ascontiguousarray(x))
        levels = IMAGE_LEVELS
    else:
        tx = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    ty = None if y is None else torch.from_numpy(np.ascontiguousarray(y, dtype=np.int64))
    if tx.ndim == 4:
        kind = "image"
    elif tx.dtype != torch.uint8 and tx.numel() > 0 and bool(((tx == 0) | (tx == 1)).all()):
        kind = "binary"
    else:
        kind = "real"
    if ty is not None and num_classes is None:
        num_classes = int(ty.max()) + 1 if ty.numel() else 0
    tc = None if c is None else torch.from_numpy(np.ascontiguousarray(c, dtype=np.float32))
    return Dataset(
        tx,
        ty,
        name,
        kind,
        tuple(tx.shape[1:]),
        num_classes,
        None if kind == "binary" else levels,
        tc,
    )


def batches(
    dataset: Dataset, batch_size: int, *, generator: torch.Generator | None = None
) -> Iterator[tuple[torch.Tensor, torch.Tensor | None]]:
    """Endless mini-batches ``(x, y)`` of ``batch_size`` distinct samples drawn at random.

    ``x`` is ``float32`` (8-bit images are converted per batch by :func:`as_float`).

    Each batch is the first ``batch_size`` entries of a fresh ``torch.randperm`` drawn from
    ``generator`` (on the generator's device; the global RNG when ``None``). The iterator keeps no
    other state, so saving ``generator.get_state()`` and restoring it later resumes the exact
    sequence of batches. ``y`` is ``None`` for unlabelled data.
    """
    n = len(dataset)
    if not 1 <= batch_size <= n:
        raise UsageError(
            f"batch_size must be between 1 and the {n} samples of {dataset.name}, got {batch_size}"
        )
    device = generator.device if generator is not None else dataset.x.device
    while True:
        index = torch.randperm(n, generator=generator, device=device)[:batch_size]
        index = index.to(dataset.x.device)
        yield as_float(dataset.x[index]), None if dataset.y is None else dataset.y[index]


def random_hflip(x: torch.Tensor, *, generator: torch.Generator) -> torch.Tensor:
    """Each image of ``x`` ``[n, C, H, W]`` mirrored left-right with probability 1/2.

    The data augmentation of the CIFAR-10 generative models (Ho et al. 2020, Sec. 4; Song et al.
    2021, App. D). The ``n`` coin flips are drawn from ``generator`` (on its device), so a saved
    generator state replays the same flips.
    """
    flip = torch.rand(x.shape[0], generator=generator, device=generator.device) < 0.5
    flip = flip.to(x.device).reshape(-1, *([1] * (x.ndim - 1)))
    return torch.where(flip, x.flip(-1), x)


def holdout_index(n: int, fraction: float, *, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Sorted indices ``(rest, held_out)`` of a seeded split of ``n`` samples.

    ``round(fraction * n)`` samples (at least 1) are held out; the split is the same for the same
    ``(n, fraction, seed)``.
    """
    n_out = max(1, round(fraction * n))
    if not 0.0 < fraction < 1.0 or n_out > n - 1:
        raise UsageError(
            f"fraction must be in (0, 1) and leave a sample on each side of {n}, got {fraction}"
        )
    order = np.random.default_rng(seed).permutation(n)
    return np.sort(order[n_out:]), np.sort(order[:n_out])


def holdout(dataset: Dataset, fraction: float = 0.1, *, seed: int = 0) -> tuple[Dataset, Dataset]:
    """Split ``dataset`` into ``(rest, held_out)`` with :func:`holdout_index`."""
    rest, held_out = holdout_index(len(dataset), fraction, seed=seed)
    return dataset.subset(torch.from_numpy(rest)), dataset.subset(torch.from_numpy(held_out))


def binarize_threshold(x: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """Deterministic binarisation ``1[x > threshold]`` (same dtype as ``x``)."""
    return (x > threshold).astype(x.dtype)


def binarize_stochastic(x: np.ndarray, *, rng: np.random.Generator) -> np.ndarray:
    """Stochastic binarisation ``b ~ Bernoulli(x)``, drawn once from ``rng``.

    The usual treatment of MNIST for Bernoulli likelihoods (Salakhutdinov & Murray 2008); drawing
    once from a seeded ``rng`` keeps the data set fixed across epochs and runs.
    """
    return (rng.uniform(size=x.shape) < x).astype(x.dtype)
