"""scikit-learn's 8×8 handwritten digits (bundled with scikit-learn, no download).

The 1797 images (UCI "Optical Recognition of Handwritten Digits", Alpaydin & Kaynak 1998) hold
pixel counts 0..16; here they are continuous intensities ``pixel / 16`` in ``[0, 1]``. A fixed
seeded permutation splits them into 1497 training and 300 test images, the same split on every
machine, so numbers measured on the test split are comparable across runs.
"""

from __future__ import annotations

from functools import cache

import numpy as np

__all__ = [
    "NUM_CLASSES",
    "SPLIT_SEED",
    "TEST_SIZE",
    "digits_split",
]

NUM_CLASSES = 10
TEST_SIZE = 300
SPLIT_SEED = 20_170_101
"""Seed of the fixed train/test permutation (never change it: it defines the test set)."""


@cache
def _all_digits() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    return (bunch.data / 16.0).astype(np.float32), bunch.target.astype(np.int64)


def digits_split(split: str) -> tuple[np.ndarray, np.ndarray]:
    """Images ``float32 [n, 64]`` in ``[0, 1]`` and labels ``int64 [n]`` of one split.

    ``split`` is ``"train"`` (1497 images), ``"test"`` (300) or ``"all"`` (1797, original order).
    """
    x, y = _all_digits()
    if split == "all":
        return x.copy(), y.copy()
    order = np.random.default_rng(SPLIT_SEED).permutation(len(x))
    if split == "train":
        index = order[TEST_SIZE:]
    elif split == "test":
        index = order[:TEST_SIZE]
    else:
        raise ValueError(f"split must be 'train', 'test' or 'all', got {split!r}")
    return x[index], y[index]
