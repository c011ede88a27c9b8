"""Loaders for user data: ``.npy``, ``.npz``, ``.pt``, ``.csv``, IDX, CIFAR and image folders.

Every loader returns ``(x, y)``: ``x`` an array ``[n, ...]`` (one row per sample; a 1-D file
becomes ``[n, 1]``) and ``y`` an ``int64`` label array ``[n]`` or ``None``. ``x`` is ``float32``,
or ``uint8`` for arrays stored as ``uint8``, which are taken to be 8-bit intensities (k stands for
k/255, as in image folders, IDX and CIFAR files). A file that cannot be read safely — pickled
objects, a truncated or corrupt file — is a :class:`~gendsl.errors.DataError` saying so; no
loader ever runs code from a file.
"""

from __future__ import annotations

import csv
import pickle
import re
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from gendsl.data.formats import (
    concat,
    is_cifar_batch,
    is_idx,
    load_cifar_batch,
    load_idx,
    standard_splits,
)
from gendsl.errors import DataError, UsageError

__all__ = ["CONDITION_KEY", "IMAGE_SUFFIXES", "load_conditions", "load_file", "load_splits"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
_ARRAY_KEYS = ("x", "data")
_LABEL_KEY = "y"
CONDITION_KEY = "c"
"""The ``.npz`` entry holding a real condition per sample (an embedding ``[n, E]`` or a
sequence of embeddings ``[n, L, E]``, e.g. CLIP text embeddings of captions)."""
_NUMERIC_ONLY = (
    "gendsl reads only numeric arrays and never unpickles a data file; save it with a numeric "
    "dtype (e.g. np.save(path, x.astype(np.float32)))"
)


def _as_samples(x: np.ndarray, where: str) -> np.ndarray:
    """``float32 [n, ...]`` (``uint8`` kept as is) from an array; 1-D becomes ``[n, 1]``."""
    if x.dtype.kind not in "biuf":
        raise DataError(f"{where}: expected a numeric array, got dtype {x.dtype}")
    if x.ndim == 0:
        raise DataError(f"{where}: expected an array of samples, got a scalar")
    samples = x if x.dtype == np.uint8 else x.astype(np.float32)
    return samples[:, None] if samples.ndim == 1 else samples


def _as_labels(y: np.ndarray, n: int, where: str) -> np.ndarray:
    """``int64 [n]`` labels; non-integer values or a wrong length raise :class:`DataError`."""
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1 or len(y) != n:
        raise DataError(f"{where}: labels have shape {list(y.shape)} but there are {n} samples")
    if y.dtype.kind not in "biuf" or (y.dtype.kind == "f" and not np.all(y == np.round(y))):
        raise DataError(f"{where}: labels must be integers, got dtype {y.dtype}")
    if len(y) and y.min() < 0:
        raise DataError(f"{where}: labels must be >= 0, got {int(y.min())}")
    return y.astype(np.int64)


def _pick(arrays: Mapping[str, object], where: str) -> tuple[object, object | None]:
    """The data entry (``x``, else ``data``, else the first non-label entry) and ``y``."""
    key = next((k for k in _ARRAY_KEYS if k in arrays), None)
    if key is None:
        key = next((k for k in arrays if k not in (_LABEL_KEY, CONDITION_KEY)), None)
    if key is None:
        raise DataError(f"{where}: no data array found (keys: {', '.join(arrays) or 'none'})")
    return arrays[key], arrays.get(_LABEL_KEY)


def _numpy_error(path: Path, err: Exception) -> DataError:
    """Our message for an array file numpy cannot load safely."""
    if "Object arrays cannot be loaded" in str(err):
        return DataError(f"{path}: holds Python objects (dtype object); {_NUMERIC_ONLY}")
    reason = "not a zip archive" if isinstance(err, zipfile.BadZipFile) else err
    return DataError(f"{path}: cannot be read ({reason}); the file is truncated or corrupt")


def _load_npy(path: Path) -> tuple[np.ndarray, np.ndarray | None]:
    try:
        x = np.load(path, allow_pickle=False)
    except (ValueError, EOFError, OSError) as err:
        raise _numpy_error(path, err) from None
    if not isinstance(x, np.ndarray):  # an .npz archive under an .npy name
        x.close()
        raise DataError(f"{path}: is an .npz archive; rename it to .npz")
    return _as_samples(x, str(path)), None


def _load_npz(path: Path) -> tuple[np.ndarray, np.ndarray | None]:
    try:
        with np.load(path, allow_pickle=False) as archive:
            x, y = _pick({k: archive[k] for k in archive.files}, str(path))
    except (ValueError, EOFError, OSError, zipfile.BadZipFile) as err:
        raise _numpy_error(path, err) from None
    x = _as_samples(np.asarray(x), str(path))
    return x, None if y is None else _as_labels(np.asarray(y), len(x), str(path))


def load_conditions(path: str | Path, n: int) -> np.ndarray | None:
    """The real conditions ``c`` ``float32 [n, ...]`` of an ``.npz`` file holding ``x`` and
    ``c`` (``None`` for other files and archives without ``c``); ``n`` is the number of samples
    of ``x``.  A non-numeric, non-finite or wrongly sized ``c`` is a :class:`DataError`."""
    path = Path(path)
    if path.suffix.lower() != ".npz":
        return None
    try:
        with np.load(path, allow_pickle=False) as archive:
            if CONDITION_KEY not in archive.files:
                return None
            c = np.asarray(archive[CONDITION_KEY])
    except (ValueError, EOFError, OSError, zipfile.BadZipFile) as err:
        raise _numpy_error(path, err) from None
    where = f"{path}: condition array {CONDITION_KEY!r}"
    if c.dtype.kind not in "biuf":
        raise DataError(f"{where}: expected a numeric array, got dtype {c.dtype}")
    if c.ndim < 2 or len(c) != n:
        raise DataError(
            f"{where} has shape {list(c.shape)}; expected one row per sample of x: "
            f"[{n}, E] or [{n}, L, E]"
        )
    c = c.astype(np.float32)
    if not np.isfinite(c).all():
        raise DataError(f"{where}: has non-finite values (NaN or inf)")
    return c


def _torch_load(path: Path) -> object:
    """``torch.load(weights_only=True)``, with a message of ours when it refuses or fails."""
    import torch

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, OSError) as err:
        found = re.search(r"Unsupported global: GLOBAL ([\w.]+)", str(err))
        if found:
            raise DataError(
                f"{path}: holds a pickled {found[1]}, which a safe load refuses; gendsl loads "
                ".pt data with torch.load(weights_only=True) and runs no code from it: save "
                "plain tensors (torch.save(x) or torch.save({'x': x, 'y': y}))"
            ) from None
        raise DataError(
            f"{path}: not a file written by torch.save, or truncated; save plain tensors with "
            "torch.save(x) or torch.save({'x': x, 'y': y})"
        ) from None


def _load_pt(path: Path) -> tuple[np.ndarray, np.ndarray | None]:
    import torch

    obj = _torch_load(path)
    if isinstance(obj, torch.Tensor):
        x, y = obj, None
    elif isinstance(obj, Mapping):
        x, y = _pick(obj, str(path))
    elif isinstance(obj, Sequence) and 1 <= len(obj) <= 2:
        x, y = obj[0], (obj[1] if len(obj) == 2 else None)
    else:
        raise DataError(
            f"{path}: expected a tensor, a dict with 'x' (and 'y') or a tuple (x, y), "
            f"got {type(obj).__name__}"
        )
    if not isinstance(x, torch.Tensor) or not (y is None or isinstance(y, torch.Tensor)):
        raise DataError(f"{path}: data and labels must be tensors")
    x_np = _as_samples(x.detach().cpu().numpy(), str(path))
    return x_np, None if y is None else _as_labels(y.cpu().numpy(), len(x_np), str(path))


def _parse_float(cell: str, path: Path, line: int, column: int) -> float:
    try:
        return float(cell)
    except ValueError:
        raise DataError(
            f"{path}:{line}: column {column + 1} is not a number: {cell.strip()!r}"
        ) from None


def _label_index(label_column: int | str, header: list[str] | None, path: Path) -> int:
    if isinstance(label_column, int):
        return label_column
    if header is None or label_column not in header:
        found = ", ".join(header) if header else "no header"
        raise DataError(f"{path}: no column named {label_column!r} ({found})")
    return header.index(label_column)


def _load_csv(
    path: Path, *, header: bool | None, label_column: int | str | None
) -> tuple[np.ndarray, np.ndarray | None]:
    """Numeric CSV; ``header=None`` detects a first row that is not all numbers."""
    with path.open(newline="") as f:
        rows = [(i + 1, row) for i, row in enumerate(csv.reader(f)) if any(c.strip() for c in row)]
    if header is None:
        header = bool(rows) and not all(_is_number(c) for c in rows[0][1])
    names = [c.strip() for c in rows[0][1]] if header and rows else None
    body = rows[1:] if header else rows
    if not body:
        raise DataError(f"{path}: no data rows")
    width = len(body[0][1])
    for line, row in body:
        if len(row) != width:
            raise DataError(f"{path}:{line}: expected {width} columns, got {len(row)}")
    table = np.array(
        [[_parse_float(c, path, line, j) for j, c in enumerate(row)] for line, row in body],
        dtype=np.float64,
    )
    if label_column is None:
        return table.astype(np.float32), None
    j = _label_index(label_column, names, path)
    if not -width <= j < width:
        raise DataError(f"{path}: label column {label_column} is out of range ({width} columns)")
    y = _as_labels(table[:, j], len(table), str(path))
    return np.delete(table, j, axis=1).astype(np.float32), y


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def _image_files(folder: Path) -> list[Path]:
    found = (p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    return sorted(found)


def _open_image(path: Path):  # -> PIL.Image.Image
    """``PIL.Image.open`` with its pixels loaded; a file PIL cannot decode is a DataError."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im.load()
            return im
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as err:
        raise DataError(
            f"{path}: not a readable image ({err}); the file is corrupt or not an image: "
            "replace or remove it"
        ) from None


def _read_image(path: Path, channels: int, image_size: tuple[int, int] | None) -> np.ndarray:
    """One image ``uint8 [C, H, W]``, converted to ``channels`` and resized if asked."""
    from PIL import Image

    im = _open_image(path).convert("L" if channels == 1 else "RGB")
    if image_size is not None:
        im = im.resize((image_size[1], image_size[0]), Image.Resampling.BILINEAR)
    a = np.asarray(im, dtype=np.uint8)
    return a[None] if channels == 1 else a.transpose(2, 0, 1)


def _folder_files(folder: Path) -> tuple[list[tuple[Path, int]], bool]:
    """``(image, class index)`` pairs (class -1 without class folders) and whether classed."""
    classes = sorted(d for d in folder.iterdir() if d.is_dir() and _image_files(d))
    top = _image_files(folder)
    if classes and top:
        raise DataError(
            f"{folder}: holds both images and class folders ({top[0].name}, {classes[0].name}/); "
            "put every image in a class folder or none"
        )
    files = [(p, k) for k, d in enumerate(classes) for p in _image_files(d)] or [
        (p, -1) for p in top
    ]
    if not files:
        raise DataError(f"{folder}: no .png/.jpg/.jpeg images found")
    return files, bool(classes)


def _load_folder(
    folder: Path, *, image_size: tuple[int, int] | None, channels: int | None
) -> tuple[np.ndarray, np.ndarray | None]:
    """Images ``uint8 [n, C, H, W]``; class sub-folders (sorted by name) give labels, as
    torchvision's ``ImageFolder``."""
    files, classed = _folder_files(folder)
    if channels not in (None, 1, 3):
        raise UsageError(f"channels must be 1 or 3, got {channels}")
    if channels is None:
        gray = ("1", "L", "I", "I;16", "F")
        channels = 1 if all(_open_image(p).mode in gray for p, _ in files) else 3
    arrays = []
    for p, _ in files:
        arrays.append(_read_image(p, channels, image_size))
        if arrays[-1].shape != arrays[0].shape:
            raise DataError(
                f"{folder}: images differ in size: {files[0][0].name} is "
                f"{arrays[0].shape[2]}x{arrays[0].shape[1]} but {p.name} is "
                f"{arrays[-1].shape[2]}x{arrays[-1].shape[1]}; pass image_size to resize"
            )
    y = np.array([k for _, k in files], dtype=np.int64) if classed else None
    return np.stack(arrays), y


def load_file(
    path: str | Path,
    *,
    header: bool | None = None,
    label_column: int | str | None = None,
    image_size: int | tuple[int, int] | None = None,
    channels: int | None = None,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Load samples ``x`` and labels ``y`` (or ``None``) from a file or an image folder.

    * ``.npy`` — one array; no labels.
    * ``.npz`` — the array ``x``, else ``data``, else the first one stored; labels from ``y``
      (real conditions from ``c``: :func:`load_conditions`).
    * ``.pt`` — a tensor, a dict like ``.npz``, or a tuple ``(x, y)``; read with
      ``torch.load(weights_only=True)``, so no code in the file is run.
    * ``.csv`` — numbers; ``header=None`` detects a header row; ``label_column`` (an index or a
      header name) is split off as integer labels.
    * an IDX file ``*-idx3-ubyte[.gz]`` with its sibling labels, a CIFAR batch, or a folder of
      the standard IDX files or CIFAR batches (train then test here; :func:`load_splits` keeps
      them apart), see :mod:`gendsl.data.formats`.
    * a folder of ``.png``/``.jpg`` images, or of class sub-folders of images (labels are the
      sub-folder indices in sorted order); ``channels`` 1 (grayscale) or 3 (RGB), by default 1
      when every image is grayscale; images are resized to ``image_size`` (``H`` or ``(H, W)``)
      only if it is given, otherwise they must all have the same size.
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise UsageError(f"data file not found: {path}")
    if path.is_dir():
        splits = standard_splits(path)
        if splits is not None:
            return concat(list(splits.values()))
        size = (image_size, image_size) if isinstance(image_size, int) else image_size
        return _load_folder(path, image_size=size, channels=channels)
    if is_idx(path):
        return load_idx(path)
    if is_cifar_batch(path):
        return load_cifar_batch(path)
    suffix = path.suffix.lower()
    if suffix == ".npy":
        return _load_npy(path)
    if suffix == ".npz":
        return _load_npz(path)
    if suffix == ".pt":
        return _load_pt(path)
    if suffix == ".csv":
        return _load_csv(path, header=header, label_column=label_column)
    raise UsageError(
        f"unsupported data file {path}: expected .npy, .npz, .pt, .csv, an IDX file "
        "(*-idx3-ubyte[.gz]), a CIFAR batch, or a folder of images, IDX files or CIFAR batches"
    )


def load_splits(path: str | Path) -> dict[str, tuple[np.ndarray, np.ndarray | None]] | None:
    """The standard ``train``/``test`` splits of a folder of IDX files or CIFAR batches;
    ``None`` for any other path."""
    path = Path(path).expanduser()
    return standard_splits(path) if path.is_dir() else None
