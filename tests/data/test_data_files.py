"""User data files: .npy, .npz, .pt, .csv and image folders, through load_dataset."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from gendsl.data import FILE_TEST_FRACTION, as_float, load_dataset
from gendsl.data.files import load_file
from gendsl.errors import DataError, UsageError

RNG = np.random.default_rng(0)
X = RNG.normal(size=(30, 3)).astype(np.float32)
Y = RNG.integers(0, 4, size=30)


def test_npy_uint8_and_vectors(tmp_path: Path) -> None:
    np.save(tmp_path / "a.npy", X)
    d = load_dataset(tmp_path / "a.npy", split="all")
    np.testing.assert_array_equal(d.x.numpy(), X)
    assert d.y is None and d.name == "a.npy" and d.shape == (3,)
    pixels = RNG.integers(0, 256, size=(5, 4, 4)).astype(np.uint8)
    np.save(tmp_path / "u.npy", pixels)
    x, _ = load_file(tmp_path / "u.npy")
    assert x.dtype == np.uint8  # 8-bit intensities stay 8-bit in memory
    np.testing.assert_array_equal(x, pixels)
    image = load_dataset(tmp_path / "u.npy", split="all", as_image=True)
    assert image.kind == "image" and image.shape == (1, 4, 4) and image.levels == 256
    np.testing.assert_allclose(as_float(image.x)[:, 0].numpy(), pixels / 255.0, rtol=1e-6)
    np.save(tmp_path / "v.npy", np.arange(7.0))
    assert load_file(tmp_path / "v.npy")[0].shape == (7, 1)


def test_npz_keys(tmp_path: Path) -> None:
    np.savez(tmp_path / "xy.npz", y=Y, x=X)
    x, y = load_file(tmp_path / "xy.npz")
    np.testing.assert_array_equal(x, X)
    np.testing.assert_array_equal(y, Y)
    np.savez(tmp_path / "data.npz", other=X[:2], data=X)
    np.testing.assert_array_equal(load_file(tmp_path / "data.npz")[0], X)
    np.savez(tmp_path / "first.npz", X, Y)  # stored as arr_0, arr_1
    x, y = load_file(tmp_path / "first.npz")
    np.testing.assert_array_equal(x, X)
    assert y is None
    np.savez(tmp_path / "bad.npz", x=X, y=Y[:5])
    with pytest.raises(DataError, match=r"labels have shape \[5\] but there are 30 samples"):
        load_file(tmp_path / "bad.npz")
    np.savez(tmp_path / "frac.npz", x=X, y=Y + 0.5)
    with pytest.raises(DataError, match="labels must be integers"):
        load_file(tmp_path / "frac.npz")


def test_pt_forms(tmp_path: Path) -> None:
    tx, ty = torch.from_numpy(X), torch.from_numpy(Y)
    torch.save(tx, tmp_path / "t.pt")
    np.testing.assert_array_equal(load_file(tmp_path / "t.pt")[0], X)
    torch.save({"x": tx, "y": ty}, tmp_path / "d.pt")
    x, y = load_file(tmp_path / "d.pt")
    np.testing.assert_array_equal(x, X)
    np.testing.assert_array_equal(y, Y)
    torch.save((tx, ty), tmp_path / "tup.pt")
    d = load_dataset(tmp_path / "tup.pt", split="all")
    assert d.num_classes == int(Y.max()) + 1
    torch.testing.assert_close(d.y, ty)
    torch.save({"x": [1, 2]}, tmp_path / "list.pt")
    with pytest.raises(DataError, match="must be tensors"):
        load_file(tmp_path / "list.pt")


def test_csv_header_and_labels(tmp_path: Path) -> None:
    rows = "\n".join(f"{a},{lab},{b}" for (a, _, b), lab in zip(X, Y, strict=True))
    (tmp_path / "h.csv").write_text("a,label,b\n" + rows + "\n")
    x, y = load_file(tmp_path / "h.csv", label_column="label")
    np.testing.assert_allclose(x, X[:, [0, 2]], rtol=1e-6)
    np.testing.assert_array_equal(y, Y)
    (tmp_path / "n.csv").write_text(rows + "\n\n")
    x, y = load_file(tmp_path / "n.csv", label_column=1)
    np.testing.assert_allclose(x, X[:, [0, 2]], rtol=1e-6)
    np.testing.assert_array_equal(y, Y)
    x, y = load_file(tmp_path / "n.csv")
    assert x.shape == (30, 3) and y is None
    (tmp_path / "bad.csv").write_text("1,2\n3,oops\n")
    with pytest.raises(DataError) as info:
        load_file(tmp_path / "bad.csv")
    assert str(info.value) == f"{tmp_path / 'bad.csv'}:2: column 2 is not a number: 'oops'"
    (tmp_path / "ragged.csv").write_text("1,2\n3\n")
    with pytest.raises(DataError, match=r"ragged.csv:2: expected 2 columns, got 1"):
        load_file(tmp_path / "ragged.csv")
    with pytest.raises(DataError, match="no column named 'class'"):
        load_file(tmp_path / "h.csv", label_column="class")


def _save(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def test_image_folders(tmp_path: Path) -> None:
    gray = RNG.integers(0, 256, size=(4, 6, 5), dtype=np.uint8)
    for i, k in enumerate(["cat", "ant", "cat", "bee"]):
        _save(tmp_path / "g" / k / f"{i}.png", gray[i])
    d = load_dataset(tmp_path / "g", split="all")
    assert d.kind == "image" and d.shape == (1, 6, 5) and d.num_classes == 3
    # sorted class folders: ant=0, bee=1, cat=2; files sorted inside each
    assert d.y.tolist() == [0, 1, 2, 2]
    assert d.x.dtype == torch.uint8 and d.levels == 256
    np.testing.assert_array_equal(d.x[0, 0].numpy(), gray[1])
    np.testing.assert_array_equal(d.x[3, 0].numpy(), gray[2])
    rgb = RNG.integers(0, 256, size=(2, 4, 4, 3), dtype=np.uint8)
    _save(tmp_path / "c" / "a.png", rgb[0])
    _save(tmp_path / "c" / "b.jpg", rgb[1])
    x, y = load_file(tmp_path / "c")
    assert x.shape == (2, 3, 4, 4) and y is None
    np.testing.assert_array_equal(x[0], rgb[0].transpose(2, 0, 1))
    x, _ = load_file(tmp_path / "c", channels=1, image_size=(2, 3))
    assert x.shape == (2, 1, 2, 3)
    _save(tmp_path / "m" / "a.png", gray[0])
    _save(tmp_path / "m" / "b.png", gray[0][:3])
    with pytest.raises(DataError, match=r"images differ in size: a\.png is 5x6 but b\.png is 5x3"):
        load_file(tmp_path / "m")
    assert load_file(tmp_path / "m", image_size=4)[0].shape == (2, 1, 4, 4)


def test_file_splits_and_errors(tmp_path: Path) -> None:
    np.save(tmp_path / "a.npy", X)
    train, test = (load_dataset(tmp_path / "a.npy", split=s) for s in ("train", "test"))
    assert len(test) == round(FILE_TEST_FRACTION * 30) and len(train) + len(test) == 30
    rows = lambda d: {r.tobytes() for r in d.x.numpy()}  # noqa: E731
    assert rows(train) | rows(test) == {r.tobytes() for r in X} and not rows(train) & rows(test)
    with pytest.raises(UsageError, match="data file not found"):
        load_dataset(tmp_path / "missing.npy")
    (tmp_path / "a.txt").write_text("1")
    with pytest.raises(UsageError, match="unsupported data file"):
        load_dataset(tmp_path / "a.txt")
    with pytest.raises(DataError, match="as_image needs samples of shape"):
        load_dataset(tmp_path / "a.npy", as_image=True)
