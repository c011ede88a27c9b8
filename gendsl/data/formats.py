"""The formats image sets are distributed in: IDX (the MNIST family) and CIFAR python batches.

* **IDX** (LeCun et al., the MNIST distribution format; also Fashion-MNIST, KMNIST, EMNIST):
  ``*-images-idx3-ubyte[.gz]`` holds ``uint8 [n, H, W]``; its labels are the sibling
  ``*-labels-idx1-ubyte[.gz]``, found automatically. A folder holding the four standard files
  (``train-*`` and ``t10k-*``, or ``*-train-*`` and ``*-test-*``) gives the standard split. EMNIST
  stores its images transposed; files named ``emnist-*`` are transposed back (upright digits).
* **CIFAR-10 / CIFAR-100 python batches** (Krizhevsky 2009): ``cifar-10-batches-py/``
  (``data_batch_1`` … ``data_batch_5``, ``test_batch``) and ``cifar-100-python/`` (``train``,
  ``test``; the 100 fine labels). Each batch is a pickle of a dict holding ``data``
  (``uint8 [n, 3072]``) and ``labels``/``fine_labels``. They are read with
  :class:`RestrictedUnpickler`, which builds only dicts, lists, strings, bytes, numbers and numpy
  arrays and refuses every other global: a file that would run code is an error, and nothing in
  it runs.

Images come back ``uint8 [n, C, H, W]``, labels ``int64 [n]``.
"""

from __future__ import annotations

import gzip
import io
import pickle
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np

from gendsl.errors import DataError

__all__ = [
    "RefusedGlobal",
    "RestrictedUnpickler",
    "concat",
    "is_cifar_batch",
    "is_idx",
    "load_cifar_batch",
    "load_idx",
    "read_idx",
    "restricted_loads",
    "standard_splits",
]

_IDX_NAME = re.compile(r"^(?P<stem>.*)images(?P<sep>[.-])idx3-ubyte(?:\.gz)?$")
_IDX_DTYPES = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_CIFAR10 = ([f"data_batch_{i}" for i in range(1, 6)], ["test_batch"])
_CIFAR100 = (["train"], ["test"])
_CIFAR_SIDE = 32


# ------------------------------------------------------------------------------------ IDX


def is_idx(path: Path) -> bool:
    """Whether ``path`` is named like an IDX file (``*-idx1-ubyte``, ``*-idx3-ubyte``, ``.gz``)."""
    return re.search(r"idx\d-ubyte(\.gz)?$", path.name) is not None


def _read_bytes(path: Path) -> bytes:
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as f:
                return f.read()
        return path.read_bytes()
    except (EOFError, gzip.BadGzipFile, OSError) as err:
        raise DataError(
            f"{path}: cannot be read ({err}); the download may be truncated or corrupt"
        ) from None


def read_idx(path: Path) -> np.ndarray:
    """The array of one IDX file (``.gz`` or not), in its stored dtype and shape.

    Layout: two zero bytes, a dtype code, the number of dimensions ``d``, ``d`` big-endian
    ``uint32`` sizes, then the values, big-endian and row-major.
    """
    raw = _read_bytes(path)
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise DataError(
            f"{path}: not an IDX file (its first bytes are {raw[:4].hex(' ') or 'missing'}; an "
            "IDX file starts 00 00, a type code 08-0e and the number of dimensions)"
        )
    dtype, ndim = _IDX_DTYPES[raw[2]], raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{path}: truncated IDX header")
    shape = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(raw) - header != expected:
        raise DataError(
            f"{path}: the header promises {list(shape)} values ({expected} bytes) but the file "
            f"holds {len(raw) - header} bytes; the file is truncated or corrupt"
        )
    values = np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape)
    return values.astype(dtype.newbyteorder("="))


def _labels_of(images: Path) -> Path | None:
    """The sibling label file of an ``*images*idx3-ubyte[.gz]`` file, if it exists."""
    match = _IDX_NAME.match(images.name)
    if match is None:
        return None
    stem = f"{match['stem']}labels{match['sep']}idx1-ubyte"
    for name in (stem, f"{stem}.gz"):
        if (images.parent / name).is_file():
            return images.parent / name
    return None


def load_idx(path: Path) -> tuple[np.ndarray, np.ndarray | None]:
    """Images ``[n, 1, H, W]`` (or any IDX array as stored) and the sibling labels, if found."""
    x = read_idx(path)
    if x.ndim == 3:
        if path.name.startswith("emnist"):
            x = x.transpose(0, 2, 1)
        x = np.ascontiguousarray(x[:, None])
    labels_path = _labels_of(path)
    if labels_path is None:
        return x, None
    y = read_idx(labels_path)
    if y.ndim != 1 or len(y) != len(x):
        raise DataError(
            f"{labels_path}: holds labels of shape {list(y.shape)} but {path.name} holds "
            f"{len(x)} images"
        )
    return x, y.astype(np.int64)


def _idx_splits(folder: Path) -> dict[str, Path] | None:
    """The train and test image files of a folder holding the standard IDX files."""
    found = {p for p in folder.iterdir() if p.is_file() and _IDX_NAME.match(p.name)}
    found -= {p for p in found if p.suffix == ".gz" and p.with_suffix("") in found}  # unpacked too
    splits = {}
    for split, words in (("train", ("train",)), ("test", ("t10k", "test"))):
        hits = [p for p in found if any(w in p.name for w in words)]
        if len(hits) > 1:
            raise DataError(
                f"{folder}: several {split} image files ({', '.join(sorted(p.name for p in hits))}"
                "); point --data at one of them"
            )
        if hits:
            splits[split] = hits[0]
    return splits if len(splits) == 2 else None


# ------------------------------------------------------------------------------ CIFAR


def _latin1_encode(text: str, encoding: str = "utf-8") -> bytes:
    """``_codecs.encode`` as Python 3 pickles ``bytes`` at protocol 2, for latin-1 only."""
    if encoding != "latin1" or not isinstance(text, str):
        raise RefusedGlobal(f"refused _codecs.encode with encoding {encoding!r}")
    return text.encode("latin1")


def _allowed_globals() -> dict[tuple[str, str], Callable[..., object]]:
    """The globals a pickled numpy array needs, and nothing else."""
    from numpy._core import multiarray, numeric

    return {
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("numpy.core.multiarray", "_reconstruct"): multiarray._reconstruct,
        ("numpy._core.multiarray", "_reconstruct"): multiarray._reconstruct,
        ("numpy.core.numeric", "_frombuffer"): numeric._frombuffer,
        ("numpy._core.numeric", "_frombuffer"): numeric._frombuffer,
        ("_codecs", "encode"): _latin1_encode,
    }


class RefusedGlobal(pickle.UnpicklingError):
    """A pickle asked for a global that :class:`RestrictedUnpickler` does not allow."""


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler for data: dicts, lists, tuples, strings, bytes, numbers and numpy arrays.

    ``find_class`` resolves only the globals that rebuild a numpy array (``ndarray``, ``dtype``,
    ``_reconstruct``, ``_frombuffer``) and ``_codecs.encode`` for latin-1; any other global —
    ``os.system``, ``builtins.eval``, a class of the writer's — raises ``UnpicklingError`` before
    it is called (the approach of the Python docs, "Restricting Globals").
    """

    def find_class(self, module: str, name: str) -> Callable[..., object]:
        allowed = _allowed_globals().get((module, name))
        if allowed is None:
            raise RefusedGlobal(f"refused global {module}.{name}")
        return allowed


def restricted_loads(data: bytes) -> object:
    """Unpickle ``data`` with :class:`RestrictedUnpickler` (Python 2 strings read as latin-1)."""
    return RestrictedUnpickler(io.BytesIO(data), encoding="latin1").load()


def is_cifar_batch(path: Path) -> bool:
    """Whether ``path`` is named like a CIFAR batch file."""
    return path.name in (*_CIFAR10[0], *_CIFAR10[1]) or (
        path.name in ("train", "test") and (path.parent / "meta").is_file()
    )


def load_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Images ``uint8 [n, 3, 32, 32]`` and labels of one CIFAR-10 or CIFAR-100 batch file."""
    try:
        batch = restricted_loads(path.read_bytes())
    except RefusedGlobal as err:
        raise DataError(
            f"{path}: refused: the file is not plain CIFAR data ({err}); gendsl reads pickled "
            "batches with a restricted unpickler and runs nothing from them"
        ) from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, IndexError) as err:
        raise DataError(f"{path}: not a readable CIFAR batch ({err})") from None
    except MemoryError:
        raise DataError(
            f"{path}: not a readable CIFAR batch (it asks for too much memory)"
        ) from None
    if not isinstance(batch, dict):
        raise DataError(f"{path}: a CIFAR batch is a dict, got {type(batch).__name__}")
    batch = {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in batch.items()}
    data = batch.get("data")
    labels = batch.get("labels", batch.get("fine_labels"))
    side = _CIFAR_SIDE * _CIFAR_SIDE
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2:
        raise DataError(f"{path}: expected 'data', a uint8 array [n, {3 * side}]")
    if data.shape[1] != 3 * side:
        raise DataError(
            f"{path}: expected 'data' of shape [n, {3 * side}], got {list(data.shape)}"
        )
    y = np.asarray(labels if labels is not None else [])
    if y.shape != (len(data),) or y.dtype.kind not in "iu":
        raise DataError(f"{path}: expected {len(data)} integer 'labels' (or 'fine_labels')")
    x = data.reshape(len(data), 3, _CIFAR_SIDE, _CIFAR_SIDE)
    return np.ascontiguousarray(x), y.astype(np.int64)


def _cifar_splits(folder: Path) -> dict[str, list[Path]] | None:
    for train, test in (_CIFAR10, _CIFAR100):
        paths = [folder / name for name in (*train, *test)]
        if all(p.is_file() for p in paths):
            return {"train": paths[: len(train)], "test": paths[len(train) :]}
    return None


def concat(
    parts: list[tuple[np.ndarray, np.ndarray | None]],
) -> tuple[np.ndarray, np.ndarray | None]:
    x = np.concatenate([p[0] for p in parts])
    ys = [p[1] for p in parts]
    return x, None if any(y is None for y in ys) else np.concatenate(ys)


def standard_splits(folder: Path) -> dict[str, tuple[np.ndarray, np.ndarray | None]] | None:
    """``{"train": (x, y), "test": (x, y)}`` of a folder holding a distributed set's standard
    files (four IDX files, or CIFAR python batches); ``None`` for any other folder."""
    idx = _idx_splits(folder)
    if idx is not None:
        return {split: load_idx(path) for split, path in idx.items()}
    cifar = _cifar_splits(folder)
    if cifar is not None:
        return {
            split: concat([load_cifar_batch(p) for p in paths]) for split, paths in cifar.items()
        }
    return None
