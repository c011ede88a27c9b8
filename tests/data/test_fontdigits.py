"""fontdigits: the bundled 28×28 set rendered from matplotlib's fonts."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from gendsl.data import BUNDLED, as_float, batches, check_against, load_dataset
from gendsl.data import fontdigits as fd
from gendsl.errors import DataError


@pytest.fixture
def small_splits(monkeypatch: pytest.MonkeyPatch) -> None:
    """A 300/100 recipe (the full one is the same code at 60 000/10 000), uncached in memory."""
    monkeypatch.setattr(fd, "SPLIT_SIZES", {"train": 300, "test": 100})
    fd._cached.cache_clear()
    yield
    fd._cached.cache_clear()


def test_fonts_are_matplotlibs_text_faces() -> None:
    names = {p.name for p in fd.font_files()}
    assert {"DejaVuSans.ttf", "DejaVuSerif-Bold.ttf", "cmr10.ttf"} <= names
    # faces whose digit code points hold other glyphs are left out
    assert not names & {"cmsy10.ttf", "cmex10.ttf", "cmmi10.ttf", "LastResortHE-Regular.ttf"}
    stack, files = fd.glyphs()
    assert stack.shape == (len(names), 10, 56, 56) and len(files) == len(names)
    ink = stack.sum(dim=(2, 3))
    assert bool((ink > 50).all())  # every glyph has ink
    # every glyph is centred: its ink's bounding box is symmetric to within a pixel
    for glyph in stack.reshape(-1, 56, 56)[::7]:
        rows = torch.nonzero(glyph.sum(1) > 0)[:, 0]
        assert abs(int(rows[0]) + int(rows[-1]) - 55) <= 1


def test_sampling_grid_matches_affine_grid() -> None:
    theta = fd._inverse_affines(np.random.default_rng(3), 17)
    expected = F.affine_grid(theta, [17, 1, 56, 56], align_corners=False)
    torch.testing.assert_close(fd._sampling_grid(theta, 56), expected)


def test_stroke_is_per_image_erosion_or_dilation() -> None:
    x = torch.rand(4, 1, 9, 9)
    out = fd._stroke(x, torch.tensor([-1, 0, 1, 2]))
    window = lambda t: F.unfold(F.pad(t, (1, 1, 1, 1), value=-1.0), 3)  # noqa: E731
    dilate = lambda t: window(t).max(1).values.reshape(t.shape)  # noqa: E731
    erode = lambda t: -dilate(-t)  # noqa: E731
    torch.testing.assert_close(out[0:1], erode(x[0:1]))
    torch.testing.assert_close(out[1], x[1])
    torch.testing.assert_close(out[2:3], dilate(x[2:3]))
    torch.testing.assert_close(out[3:4], dilate(dilate(x[3:4])))


def test_generation_is_deterministic_cached_and_atomic(
    small_splits: None, tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sets = []
    for folder in ("a", "b"):
        monkeypatch.setenv("GENDSL_CACHE", str(tmp_path / folder))
        fd._cached.cache_clear()
        sets.append({s: fd.fontdigits_split(s) for s in ("train", "test", "all")})
        assert sorted(p.name for p in (tmp_path / folder).iterdir()) == [fd.CACHE_NAME]
    for split in ("train", "test", "all"):
        np.testing.assert_array_equal(sets[0][split][0], sets[1][split][0])
        np.testing.assert_array_equal(sets[0][split][1], sets[1][split][1])
    train, test = sets[0]["train"], sets[0]["test"]
    assert train[0].shape == (300, 1, 28, 28) and test[0].shape == (100, 1, 28, 28)
    assert train[0].dtype == np.uint8 and train[1].dtype == np.int64
    assert np.bincount(train[1]).tolist() == [30] * 10
    assert not np.array_equal(train[0][:100], test[0])  # independent streams
    # the second use reads the file: a changed file is what comes back
    path = tmp_path / "b" / fd.CACHE_NAME
    arrays = dict(np.load(path))
    arrays["y_test"] = np.zeros(100, dtype=np.int64)
    np.savez(path, **arrays)
    fd._cached.cache_clear()
    assert not fd.fontdigits_split("test")[1].any()
    # an unreadable, truncated or incomplete cache entry is regenerated
    whole = (tmp_path / "a" / fd.CACHE_NAME).read_bytes()
    arrays.pop("fonts")
    np.savez(tmp_path / "incomplete.npz", **arrays)
    for broken in (
        b"not a zip",
        whole[: len(whole) // 2],
        (tmp_path / "incomplete.npz").read_bytes(),
    ):
        path.write_bytes(broken)
        fd._cached.cache_clear()
        np.testing.assert_array_equal(fd.fontdigits_split("test")[1], test[1])
        assert path.read_bytes() == whole


def test_the_full_set() -> None:
    """Real split sizes, balanced labels, 8-bit images kept as uint8 (uses $GENDSL_CACHE)."""
    assert "fontdigits" in BUNDLED
    train, test = load_dataset("fontdigits"), load_dataset("fontdigits", split="test")
    assert (len(train), len(test), len(load_dataset("fontdigits", split="all"))) == (
        60_000,
        10_000,
        70_000,
    )
    assert train.x.dtype == torch.uint8 and train.shape == (1, 28, 28)
    assert (train.kind, train.levels, train.num_classes) == ("image", 256, 10)
    assert torch.bincount(train.y).tolist() == [6000] * 10
    assert torch.bincount(test.y).tolist() == [1000] * 10
    mean = float(train.x.float().mean()) / 255
    assert 0.1 < mean < 0.25  # dark background, bright strokes like MNIST (0.13)
    flat = load_dataset("fontdigits", split="test", n=50, as_image=False)
    assert flat.x.shape == (50, 784) and flat.x.dtype == torch.uint8
    binary = load_dataset("fontdigits", split="test", n=50, binarize=True)
    assert binary.kind == "image" and set(binary.x.unique().tolist()) <= {0.0, 1.0}
    bindings = check_against(
        test, {"name": "x", "type": "image", "shape": ["C", 28, 28], "span": None}
    )
    assert bindings == {"C": 1}
    with pytest.raises(DataError, match="8-bit grey levels that are not 0/1"):
        check_against(test, {"name": "x", "type": "binary", "shape": [1, 28, 28], "span": None})
    x, y = next(batches(test, 32, generator=torch.Generator().manual_seed(0)))
    assert x.dtype == torch.float32 and float(x.max()) <= 1.0 and y.shape == (32,)


def test_as_float_scales_only_uint8() -> None:
    k = torch.tensor([0, 51, 255], dtype=torch.uint8)
    torch.testing.assert_close(as_float(k), torch.tensor([0.0, 0.2, 1.0]))
    real = torch.tensor([3.5])
    assert as_float(real) is real
