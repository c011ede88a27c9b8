"""Unreadable data files: a message of ours, exit 1 from the CLI, nothing written, no code run."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from gendsl.cli import main
from gendsl.data import load_dataset
from gendsl.errors import DataError

REPO = Path(__file__).resolve().parents[2]
SPEC = str(REPO / "stdlib" / "realnvp.gen")


class Meta:
    """An arbitrary Python object a user might pickle beside the data."""


def _objects(path: Path) -> str:
    return (
        f"{path}: holds Python objects (dtype object); gendsl reads only numeric arrays and never "
        "unpickles a data file; save it with a numeric dtype (e.g. np.save(path, "
        "x.astype(np.float32)))"
    )


def _object_npy(folder: Path) -> tuple[Path, str]:
    path = folder / "objects.npy"
    np.save(path, np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
    return path, _objects(path)


def _object_npz(folder: Path) -> tuple[Path, str]:
    path = folder / "objects.npz"
    np.savez(path, x=np.zeros((4, 2)), y=np.array([Meta()] * 4, dtype=object))
    return path, _objects(path)


def _pickled_pt(folder: Path) -> tuple[Path, str]:
    path = folder / "pickled.pt"
    torch.save({"x": torch.zeros(4, 2), "meta": Meta()}, path)
    return path, (
        f"{path}: holds a pickled {__name__}.Meta, which a safe load refuses; gendsl loads .pt "
        "data with torch.load(weights_only=True) and runs no code from it: save plain tensors "
        "(torch.save(x) or torch.save({'x': x, 'y': y}))"
    )


def _garbage_pt(folder: Path) -> tuple[Path, str]:
    path = folder / "garbage.pt"
    path.write_bytes(b"\x80\x02not really a pickle" * 3)
    return path, (
        f"{path}: not a file written by torch.save, or truncated; save plain tensors with "
        "torch.save(x) or torch.save({'x': x, 'y': y})"
    )


def _truncated_npy(folder: Path) -> tuple[Path, str]:
    path = folder / "truncated.npy"
    np.save(path, np.zeros((100, 10)))
    path.write_bytes(path.read_bytes()[:500])
    return path, (
        f"{path}: cannot be read (Failed to read all data for array. Expected (100, 10) = 1000 "
        "elements, could only read 46 elements. (file seems not fully written?)); the file is "
        "truncated or corrupt"
    )


def _corrupt_png(folder: Path) -> tuple[Path, str]:
    root = folder / "images"
    (root / "a").mkdir(parents=True)
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(root / "a" / "ok.png")
    bad = root / "a" / "zz.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 20)
    return root, f"{bad}: not a readable image ("


def _truncated_png(folder: Path) -> tuple[Path, str]:
    root = folder / "cut"
    root.mkdir()
    pixels = np.random.default_rng(0).integers(0, 256, (32, 32), dtype=np.uint8)
    Image.fromarray(pixels).save(root / "a.png")
    Image.fromarray(pixels).save(root / "b.png")
    (root / "b.png").write_bytes((root / "b.png").read_bytes()[:200])
    return root, f"{root / 'b.png'}: not a readable image ("


def _one_row_csv(folder: Path) -> tuple[Path, str]:
    path = folder / "one.csv"
    path.write_text("a,b\n1.0,2.0\n")
    return path, (
        f"{path}: has 1 sample; gendsl needs at least 2 to hold out a test split (10% of the rows)"
    )


def _empty_npy(folder: Path) -> tuple[Path, str]:
    path = folder / "empty.npy"
    np.save(path, np.zeros((0, 2), np.float32))
    return path, (
        f"{path}: has 0 samples; gendsl needs at least 2 to hold out a test split "
        "(10% of the rows)"
    )


def _truncated_idx(folder: Path) -> tuple[Path, str]:
    path = folder / "train-images-idx3-ubyte.gz"
    raw = struct.pack(">HBB3I", 0, 8, 3, 20, 28, 28) + bytes(20 * 784)
    with gzip.open(path, "wb") as f:
        f.write(raw)
    path.write_bytes(path.read_bytes()[:-30])
    return path, f"{path}: cannot be read ("


def _wrong_magic(folder: Path) -> tuple[Path, str]:
    path = folder / "train-images-idx3-ubyte"
    path.write_bytes(b"PK\x03\x04" + bytes(60))
    return path, (
        f"{path}: not an IDX file (its first bytes are 50 4b 03 04; an IDX file starts 00 00, a "
        "type code 08-0e and the number of dimensions)"
    )


CASES = [
    _object_npy,
    _object_npz,
    _pickled_pt,
    _garbage_pt,
    _truncated_npy,
    _corrupt_png,
    _truncated_png,
    _one_row_csv,
    _empty_npy,
    _truncated_idx,
    _wrong_magic,
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.__name__.strip("_"))
def test_unreadable_data_is_a_data_error(case, tmp_path: Path) -> None:
    path, message = case(tmp_path)
    with pytest.raises(DataError) as info:
        load_dataset(path)
    if message.endswith("("):  # the rest is the decoder's own words
        assert str(info.value).startswith(message) and "corrupt" in str(info.value)
    else:
        assert str(info.value) == message


@pytest.mark.parametrize("case", [_pickled_pt, _corrupt_png, _one_row_csv, _truncated_idx])
def test_the_cli_reports_it_and_writes_nothing(case, tmp_path: Path, capsys) -> None:
    path, message = case(tmp_path)
    out = tmp_path / "run"
    code = main(["train", SPEC, "--data", str(path), "--out", str(out), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 1
    assert err.startswith(f"error: {message}")
    assert "weights_only=False" not in err and "Traceback" not in err
    assert not out.exists()
