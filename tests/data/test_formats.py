"""IDX and CIFAR files in their distributed formats, written here from the format descriptions."""

from __future__ import annotations

import gzip
import os
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from gendsl.data import load_dataset
from gendsl.data.files import load_file
from gendsl.data.formats import read_idx, restricted_loads
from gendsl.errors import DataError

RNG = np.random.default_rng(1)


def _write_idx(path: Path, array: np.ndarray) -> None:
    """IDX: 0x0000, type code (0x08 = ubyte), ndim, big-endian uint32 sizes, row-major data."""
    codes = {np.dtype(np.uint8): 0x08, np.dtype(">i4"): 0x0C, np.dtype(">f4"): 0x0D}
    data = array.astype(array.dtype.newbyteorder(">") if array.itemsize > 1 else array.dtype)
    raw = struct.pack(">HBB", 0, codes[data.dtype], array.ndim)
    raw += struct.pack(f">{array.ndim}I", *array.shape) + data.tobytes()
    if path.suffix == ".gz":
        with gzip.open(path, "wb") as f:
            f.write(raw)
    else:
        path.write_bytes(raw)


def _mnist_folder(folder: Path, n_train: int = 12, n_test: int = 5, gz: bool = True) -> dict:
    folder.mkdir(parents=True, exist_ok=True)
    ext = ".gz" if gz else ""
    arrays = {}
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        x = RNG.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        y = RNG.integers(0, 10, size=n).astype(np.uint8)
        _write_idx(folder / f"{prefix}-images-idx3-ubyte{ext}", x)
        _write_idx(folder / f"{prefix}-labels-idx1-ubyte{ext}", y)
        arrays[prefix] = (x, y)
    return arrays


def test_idx_reader_dtypes(tmp_path: Path) -> None:
    for i, array in enumerate(
        (
            RNG.integers(0, 256, size=(3, 4, 5), dtype=np.uint8),
            RNG.integers(-(2**31), 2**31, size=(7,)).astype(">i4"),
            RNG.normal(size=(2, 3)).astype(">f4"),
        )
    ):
        _write_idx(tmp_path / f"{i}-idx1-ubyte", array)
        out = read_idx(tmp_path / f"{i}-idx1-ubyte")
        np.testing.assert_array_equal(out, array)
        assert out.dtype.isnative


def test_mnist_folder_gives_the_standard_split(tmp_path: Path) -> None:
    arrays = _mnist_folder(tmp_path / "mnist")
    train = load_dataset(tmp_path / "mnist")
    test = load_dataset(tmp_path / "mnist", split="test")
    everything = load_dataset(tmp_path / "mnist", split="all")
    assert (len(train), len(test), len(everything)) == (12, 5, 17)
    assert train.x.dtype == torch.uint8 and train.shape == (1, 28, 28) and train.levels == 256
    np.testing.assert_array_equal(train.x[:, 0].numpy(), arrays["train"][0])
    np.testing.assert_array_equal(test.y.numpy(), arrays["t10k"][1])
    np.testing.assert_array_equal(everything.x[12:, 0].numpy(), arrays["t10k"][0])
    assert train.num_classes == test.num_classes  # the classes of both splits
    # a folder where the files were also unpacked beside their .gz reads the unpacked ones
    for name in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"):
        unpacked = gzip.decompress((tmp_path / "mnist" / f"{name}.gz").read_bytes())
        (tmp_path / "mnist" / name).write_bytes(unpacked)
    assert len(load_dataset(tmp_path / "mnist")) == 12
    # one file: its sibling labels are found; the file's own holdout split applies
    x, y = load_file(tmp_path / "mnist" / "train-images-idx3-ubyte.gz")
    np.testing.assert_array_equal(x[:, 0], arrays["train"][0])
    np.testing.assert_array_equal(y, arrays["train"][1])


def test_idx_names_of_the_other_sets(tmp_path: Path) -> None:
    """Uncompressed files, the dotted spelling, EMNIST's transposed images."""
    x = RNG.integers(0, 256, size=(4, 28, 28), dtype=np.uint8)
    y = np.array([1, 2, 3, 26], dtype=np.uint8)
    _write_idx(tmp_path / "train-images.idx3-ubyte", x)
    _write_idx(tmp_path / "train-labels.idx1-ubyte", y)
    got_x, got_y = load_file(tmp_path / "train-images.idx3-ubyte")
    np.testing.assert_array_equal(got_x[:, 0], x)
    np.testing.assert_array_equal(got_y, y)
    _write_idx(tmp_path / "emnist-letters-train-images-idx3-ubyte", x)
    _write_idx(tmp_path / "emnist-letters-train-labels-idx1-ubyte", y)
    got_x, got_y = load_file(tmp_path / "emnist-letters-train-images-idx3-ubyte")
    np.testing.assert_array_equal(got_x[:, 0], x.transpose(0, 2, 1))
    np.testing.assert_array_equal(got_y, y)
    # without a label file: images only
    _write_idx(tmp_path / "kmnist-images-idx3-ubyte", x)
    assert load_file(tmp_path / "kmnist-images-idx3-ubyte")[1] is None


def test_idx_errors(tmp_path: Path) -> None:
    x = RNG.integers(0, 256, size=(4, 28, 28), dtype=np.uint8)
    _write_idx(tmp_path / "a-images-idx3-ubyte.gz", x)
    whole = (tmp_path / "a-images-idx3-ubyte.gz").read_bytes()
    (tmp_path / "t-images-idx3-ubyte.gz").write_bytes(whole[: len(whole) // 2])
    with pytest.raises(DataError) as info:
        load_file(tmp_path / "t-images-idx3-ubyte.gz")
    assert str(info.value).startswith(f"{tmp_path / 't-images-idx3-ubyte.gz'}: cannot be read (")
    assert str(info.value).endswith("the download may be truncated or corrupt")
    (tmp_path / "m-images-idx3-ubyte").write_bytes(b"\x1f\x8b\x08\x03" + bytes(100))
    with pytest.raises(DataError) as info:
        load_file(tmp_path / "m-images-idx3-ubyte")
    assert str(info.value) == (
        f"{tmp_path / 'm-images-idx3-ubyte'}: not an IDX file (its first bytes are 1f 8b 08 03; "
        "an IDX file starts 00 00, a type code 08-0e and the number of dimensions)"
    )
    raw = struct.pack(">HBB3I", 0, 8, 3, 4, 28, 28) + bytes(100)
    (tmp_path / "s-images-idx3-ubyte").write_bytes(raw)
    with pytest.raises(DataError, match=r"promises \[4, 28, 28\] values \(3136 bytes\) but the "):
        load_file(tmp_path / "s-images-idx3-ubyte")
    _write_idx(tmp_path / "b-images-idx3-ubyte", x)
    _write_idx(tmp_path / "b-labels-idx1-ubyte", np.zeros(3, dtype=np.uint8))
    with pytest.raises(DataError, match=r"labels of shape \[3\] but b-images-idx3-ubyte holds 4"):
        load_file(tmp_path / "b-images-idx3-ubyte")


# --------------------------------------------------------------------------------- CIFAR


class _Python2Pickler(pickle._Pickler):
    """Writes ``bytes`` as Python 2 ``str`` (BINSTRING), as the CIFAR batches were written."""

    dispatch = pickle._Pickler.dispatch.copy()

    def _save_str(self, obj: bytes) -> None:
        if len(obj) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(obj)]) + obj)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(obj)) + obj)
        self.memoize(obj)

    dispatch[bytes] = _save_str


def _python2_pickle(obj: object, path: Path) -> None:
    with path.open("wb") as f:
        _Python2Pickler(f, protocol=2).dump(obj)


def _cifar10_folder(folder: Path, per_batch: int = 3) -> tuple[np.ndarray, list[int]]:
    """``data_batch_1..5`` and ``test_batch``: dicts of ``data`` uint8 [n, 3072] and ``labels``."""
    folder.mkdir(parents=True)
    xs, ys = [], []
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data = RNG.integers(0, 256, size=(per_batch, 3072), dtype=np.uint8)
        labels = [int(v) for v in RNG.integers(0, 10, size=per_batch)]
        batch = {b"batch_label": b"batch", b"labels": labels, b"data": data,
                 b"filenames": [b"f.png"] * per_batch}  # fmt: skip
        _python2_pickle(batch, folder / name)
        xs.append(data)
        ys.extend(labels)
    (folder / "batches.meta").write_bytes(b"")
    return np.concatenate(xs), ys


def test_cifar10_folder(tmp_path: Path) -> None:
    data, labels = _cifar10_folder(tmp_path / "cifar-10-batches-py")
    train = load_dataset(tmp_path / "cifar-10-batches-py")
    test = load_dataset(tmp_path / "cifar-10-batches-py", split="test")
    assert (len(train), len(test)) == (15, 3)
    assert train.shape == (3, 32, 32) and train.x.dtype == torch.uint8 and train.kind == "image"
    # channel-major rows: 1024 red values, then green, then blue, each a 32×32 row-major image
    np.testing.assert_array_equal(train.x[4, 1].numpy(), data[4, 1024:2048].reshape(32, 32))
    assert train.y.tolist() == labels[:15] and test.y.tolist() == labels[15:]


def test_cifar100_and_python3_pickles(tmp_path: Path) -> None:
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    for name, n in (("train", 6), ("test", 2)):
        data = RNG.integers(0, 256, size=(n, 3072), dtype=np.uint8)
        batch = {"data": data, "fine_labels": [99] * n, "coarse_labels": [19] * n}
        (folder / name).write_bytes(pickle.dumps(batch, protocol=2 if n == 6 else 5))
    (folder / "meta").write_bytes(b"")
    train, test = (load_dataset(folder, split=s) for s in ("train", "test"))
    assert (len(train), len(test), train.num_classes) == (6, 2, 100)
    x, y = load_file(folder / "test")
    assert x.shape == (2, 3, 32, 32) and y.tolist() == [99, 99]


class _Trap:
    """Pickles as a call of ``os.system``: unpickling it with ``pickle.load`` runs the command."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_booby_trapped_batch_is_refused_and_runs_nothing(tmp_path: Path) -> None:
    folder = tmp_path / "cifar-10-batches-py"
    _cifar10_folder(folder)
    marker = tmp_path / "pwned"
    batch = {"data": np.zeros((3, 3072), np.uint8), "labels": [0, 1, 2], "x": _Trap(marker)}
    payload = pickle.dumps(batch, protocol=2)
    (folder / "data_batch_3").write_bytes(payload)
    with pytest.raises(DataError) as info:
        load_dataset(folder)
    assert str(info.value) == (
        f"{folder / 'data_batch_3'}: refused: the file is not plain CIFAR data (refused global "
        f"{os.system.__module__}.system); gendsl reads pickled batches with a restricted "
        "unpickler and runs nothing from them"
    )
    assert not marker.exists()
    with pytest.raises(pickle.UnpicklingError, match=r"refused global builtins\.eval"):
        restricted_loads(pickle.dumps({"a": eval}, protocol=4))
    # the control: the same bytes through a general unpickler do run the command
    control = tmp_path / "PWNED"  # same length: the pickled string keeps its size
    pickle.loads(payload.replace(str(marker).encode(), str(control).encode()))
    assert control.exists()


class _Huge:
    """Pickles as ``numpy.ndarray((10**14,), "u1")``: allowed globals, an impossible size."""

    def __reduce__(self):
        return (np.ndarray, ((10**14,), "u1"))


def test_cifar_structure_errors(tmp_path: Path) -> None:
    path = tmp_path / "data_batch_1"
    path.write_bytes(pickle.dumps({"data": np.zeros((2, 10), np.uint8), "labels": [0, 1]}))
    with pytest.raises(DataError, match=r"expected 'data' of shape \[n, 3072\], got \[2, 10\]"):
        load_file(path)
    path.write_bytes(pickle.dumps({"data": np.zeros((2, 3072), np.uint8), "labels": [0]}))
    with pytest.raises(DataError, match="expected 2 integer 'labels'"):
        load_file(path)
    keys_as_bytes = {b"data": np.zeros((2, 3072), np.uint8), b"labels": [3, 4]}
    path.write_bytes(pickle.dumps(keys_as_bytes))  # re-saved after loading with encoding="bytes"
    assert load_file(path)[1].tolist() == [3, 4]
    # a header that does not match its data, and an array of 10^14 bytes: data errors
    small = pickle.dumps({"data": np.zeros((1, 1), np.uint8)}, protocol=2)
    path.write_bytes(small.replace(b"K\x01K\x01\x86", b"K\x07K\x01\x86"))
    with pytest.raises(DataError, match=r"data_batch_1: not a readable CIFAR batch \(buffer"):
        load_file(path)
    path.write_bytes(pickle.dumps({"data": _Huge()}, protocol=2))
    with pytest.raises(DataError, match=r"not a readable CIFAR batch \(it asks for too much mem"):
        load_file(path)
    path.write_bytes(pickle.dumps([1, 2]))
    with pytest.raises(DataError, match="a CIFAR batch is a dict, got list"):
        load_file(path)
    path.write_bytes(pickle.dumps({"data": np.zeros((2, 3072), np.uint8)})[:40])
    with pytest.raises(DataError, match="data_batch_1: not a readable CIFAR batch"):
        load_file(path)


# ------------------------------------------------------------------------------ the CLI

TINY_UNET = """\
model tiny_unet {
  data x : image[C, S, S]
  let beta(t) = 0.1 + 19.9 * t
  sde dx = -0.5 * beta(t) * x * dt + sqrt(beta(t)) * dw, t in [0, 1]
  net eps = UNet(channels = [8, 16], time = fourier)
  predict eps = eps(x_t, t)
  loss dsm
  sample with dpm_solver(order = 2, steps = 4)
  train {
    steps = 3
    batch = 4
  }
}
"""


@pytest.mark.parametrize("kind", ["idx", "cifar"])
def test_distributed_folders_train_and_sample_through_the_cli(
    kind: str, tmp_path: Path, capsys
) -> None:
    from gendsl.cli import main

    if kind == "idx":
        folder, shape = tmp_path / "fashion", [2, 1, 28, 28]
        _mnist_folder(folder, n_train=8, n_test=4, gz=False)
    else:
        folder, shape = tmp_path / "cifar-10-batches-py", [2, 3, 32, 32]
        _cifar10_folder(folder, per_batch=2)
    spec = TINY_UNET if kind == "idx" else TINY_UNET.replace("batch = 4", "batch = 4 hflip = true")
    (tmp_path / "tiny.gen").write_text(spec)
    run, samples = tmp_path / "run", tmp_path / "s.npy"
    args = ["train", str(tmp_path / "tiny.gen"), "--data", str(folder), "--out", str(run)]
    assert main([*args, "--no-progress"]) == 0
    assert main(["sample", str(run), "-n", "2", "--out", str(samples)]) == 0
    assert list(np.load(samples).shape) == shape
    assert "trained tiny_unet for 3 steps" in capsys.readouterr().out
