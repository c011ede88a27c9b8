"""Data for gendsl: the bundled toy sets and digits, user files, and checks against a spec.

:func:`load_dataset` is the one entry point. A name picks a bundled set — one of the 2-D toy sets
(:data:`gendsl.data.toy.NAMES`), ``digits`` (8×8 intensities in ``[0, 1]``, flat ``[64]``),
``digits_binary`` (thresholded at 0.5), ``digits_image`` (``[1, 8, 8]``) or ``fontdigits`` (28×28
8-bit images ``[1, 28, 28]``, :mod:`gendsl.data.fontdigits`) — anything else is a
path to a ``.npy``/``.npz``/``.pt``/``.csv`` file or an image folder (:mod:`gendsl.data.files`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from gendsl.data import toy
from gendsl.data.check import check_against, check_conditions, format_type
from gendsl.data.dataset import (
    IMAGE_LEVELS,
    Dataset,
    as_float,
    batches,
    binarize_stochastic,
    binarize_threshold,
    from_arrays,
    holdout,
    holdout_index,
    random_hflip,
)
from gendsl.data.digits import NUM_CLASSES, digits_split
from gendsl.data.files import load_conditions, load_file, load_splits
from gendsl.data.fontdigits import fontdigits_split
from gendsl.data.formats import concat
from gendsl.errors import DataError, UsageError

__all__ = [
    "BUNDLED",
    "DEFAULT_TOY_SIZE",
    "FILE_TEST_FRACTION",
    "IMAGE_LEVELS",
    "Dataset",
    "as_float",
    "batches",
    "check_against",
    "check_conditions",
    "format_type",
    "holdout",
    "holdout_index",
    "load_dataset",
    "random_hflip",
]

DIGITS_LEVELS = 17
"""The 8×8 digits hold the integers 0..16, scaled to k/16."""

DEFAULT_TOY_SIZE = 10_000
"""Points drawn from a toy set when ``n`` is not given."""

FILE_TEST_FRACTION = 0.1
"""Share of a user file held out as its ``test`` split."""

_DIGITS = {"digits": (False, False), "digits_binary": (True, False), "digits_image": (False, True)}
FONTDIGITS = "fontdigits"
BUNDLED: tuple[str, ...] = (*toy.NAMES, *_DIGITS, FONTDIGITS)
"""Every bundled data set name."""

_SPLITS = ("train", "test", "all")
_SPLIT_STREAM = {"train": 0, "test": 1, "all": 2}


def _stream(seed: int, split: str) -> int | np.random.SeedSequence:
    """The random stream of one split: ``seed`` itself for ``train``, an independent one else."""
    return seed if split == "train" else np.random.SeedSequence([seed, _SPLIT_STREAM[split]])


def _subsample(
    x: np.ndarray,
    y: np.ndarray | None,
    n: int | None,
    rng: np.random.Generator,
    what: str,
    c: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """``n`` samples (with their labels ``y`` and conditions ``c``) picked at random without
    replacement (all of them, in order, if ``None``)."""
    if n is None:
        return x, y, c
    if not 0 <= n <= len(x):
        raise UsageError(f"n must be between 0 and the {len(x)} samples of {what}, got {n}")
    index = np.sort(rng.permutation(len(x))[:n])
    return x[index], None if y is None else y[index], None if c is None else c[index]


def _binarize(x: np.ndarray, mode: bool | str, rng: np.random.Generator, what: str) -> np.ndarray:
    if mode is False:
        return x
    if x.dtype == np.uint8:
        x = x.astype(np.float32) / (IMAGE_LEVELS - 1)
    if x.size and (x.min() < 0.0 or x.max() > 1.0):
        raise DataError(
            f"binarize needs values in [0, 1] but {what} has values in "
            f"[{float(x.min()):g}, {float(x.max()):g}]"
        )
    if mode is True or mode == "threshold":
        return binarize_threshold(x)
    if mode == "stochastic":
        return binarize_stochastic(x, rng=rng)
    raise UsageError(f"binarize must be False, True, 'threshold' or 'stochastic', got {mode!r}")


def _shape_image(x: np.ndarray, as_image: bool | None, what: str) -> np.ndarray:
    """Per-sample ``[C, H, W]`` (a ``[H, W]`` sample gains a channel) or flat ``[D]``."""
    if as_image is None:
        return x
    if not as_image:
        return x.reshape(len(x), -1)
    if x.ndim == 3:
        return x[:, None]
    if x.ndim != 4:
        raise DataError(
            f"as_image needs samples of shape [H, W] or [C, H, W] but {what} has samples of "
            f"shape [{', '.join(str(d) for d in x.shape[1:])}]"
        )
    return x


def _num_classes(*labels: np.ndarray | None) -> int | None:
    if any(y is None for y in labels):
        return None
    return max(int(y.max(initial=-1)) for y in labels) + 1


def _file_split(
    path: Path, split: str, seed: int, **options: Any
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None, int | None]:
    """Samples, labels, real conditions (an ``.npz``'s ``c``) and the number of classes of one
    split of a user file or folder.

    A folder of a distributed set's standard files keeps its own train/test split; any other
    file holds out a seeded :data:`FILE_TEST_FRACTION` as its test split.
    """
    standard = load_splits(path)
    if standard is not None:
        num_classes = _num_classes(*(y for _, y in standard.values()))
        x, y = concat(list(standard.values())) if split == "all" else standard[split]
        return x, y, None, num_classes
    x, y = load_file(path, **options)
    c = load_conditions(path, len(x))
    if len(x) < 2:
        raise DataError(
            f"{path}: has {len(x)} sample{'' if len(x) == 1 else 's'}; gendsl needs at least 2 "
            f"to hold out a test split ({FILE_TEST_FRACTION:.0%} of the rows)"
        )
    if split != "all":
        train, test = holdout_index(len(x), FILE_TEST_FRACTION, seed=seed)
        index = train if split == "train" else test
        num_classes = _num_classes(y)
        y, c = (None if a is None else a[index] for a in (y, c))
        return x[index], y, c, num_classes
    return x, y, c, _num_classes(y)


def load_dataset(
    name_or_path: str | Path,
    *,
    n: int | None = None,
    seed: int = 0,
    split: str = "train",
    binarize: bool | str | None = None,
    as_image: bool | None = None,
    header: bool | None = None,
    label_column: int | str | None = None,
    image_size: int | tuple[int, int] | None = None,
    channels: int | None = None,
) -> Dataset:
    """Load a bundled set or a user file as a :class:`Dataset` of CPU tensors.

    8-bit images (``fontdigits``, ``uint8`` arrays) stay ``uint8``; batches become ``float32``
    in ``[0, 1]`` through :func:`as_float`.

    :param n: number of samples. A toy set draws ``n`` fresh points (default
        :data:`DEFAULT_TOY_SIZE`); digits and files keep ``n`` samples picked at random from the
        split (default: the whole split, in order).
    :param seed: seeds the toy points, the subsample and the stochastic binarisation;
        ``load_dataset(toy, n=n, seed=s).x`` equals ``toy.make(toy, n, seed=s)``.
    :param split: ``"train"`` or ``"test"``. Toy sets draw the test split from an independent
        stream; digits use the fixed 1497/300 split, fontdigits its fixed 60 000/10 000 split;
        files hold out a fixed seeded :data:`FILE_TEST_FRACTION`. ``"all"`` (digits, fontdigits
        and files) is everything.
    :param binarize: ``True``/``"threshold"`` (``x > 0.5``), ``"stochastic"``
        (``Bernoulli(x)``, drawn once from ``seed``) or ``False``; ``None`` means as the name
        says (``digits_binary`` thresholds, nothing else does). Needs values in ``[0, 1]``.
    :param as_image: ``True`` shapes samples ``[C, H, W]``, ``False`` flattens them, ``None``
        keeps the natural shape (``digits_image`` is ``[1, 8, 8]``, digits ``[64]``).
    :param header, label_column, image_size, channels: file options, see
        :func:`gendsl.data.files.load_file`.
    """
    if split not in _SPLITS:
        raise UsageError(f"split must be one of {', '.join(_SPLITS)}, got {split!r}")
    name = str(name_or_path)
    rng = np.random.default_rng(_stream(seed, split))
    c = None
    if name in toy.NAMES:
        if split == "all":
            raise UsageError(
                f"split 'all' does not apply to the toy set {name}; use train or test"
            )
        x, y = toy.make_labelled(
            name, DEFAULT_TOY_SIZE if n is None else n, seed=_stream(seed, split)
        )
        num_classes = toy.LABELLED.get(name)
    elif name in _DIGITS:
        default_binary, default_image = _DIGITS[name]
        x, y, _ = _subsample(*digits_split(split), n, rng, f"the digits {split} split")
        x = x.reshape(-1, 1, 8, 8) if default_image else x
        binarize = default_binary if binarize is None else binarize
        num_classes = NUM_CLASSES
    elif name == FONTDIGITS:
        x, y, _ = _subsample(*fontdigits_split(split), n, rng, f"the fontdigits {split} split")
        num_classes = NUM_CLASSES
    else:
        x, y, c, num_classes = _file_split(
            Path(name),
            split,
            seed,
            header=header,
            label_column=label_column,
            image_size=image_size,
            channels=channels,
        )
        name = Path(name).name
        x, y, c = _subsample(x, y, n, rng, f"the {split} split of {name}", c)
    x = _shape_image(_binarize(x, binarize or False, rng, name), as_image, name)
    levels = DIGITS_LEVELS if str(name_or_path) in _DIGITS else None
    return from_arrays(x, y, name, num_classes=num_classes, levels=levels, c=c)
