"""load_dataset for bundled sets, check_against messages, batches and holdout."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

from gendsl.data import (
    BUNDLED,
    batches,
    check_against,
    holdout,
    load_dataset,
)
from gendsl.data.toy import make
from gendsl.errors import DataError, UsageError
from gendsl.source import Span


def _rows(x: torch.Tensor) -> set[bytes]:
    return {r.tobytes() for r in x.reshape(len(x), -1).numpy()}


def test_digits_splits_are_fixed_disjoint_and_complete() -> None:
    train, test = load_dataset("digits"), load_dataset("digits", split="test")
    everything = load_dataset("digits", split="all")
    assert (len(train), len(test), len(everything)) == (1497, 300, 1797)
    assert train.shape == (64,) and train.kind == "real" and train.num_classes == 10
    raw = load_digits()
    torch.testing.assert_close(everything.x, torch.tensor(raw.data / 16, dtype=torch.float32))
    torch.testing.assert_close(everything.y, torch.tensor(raw.target))
    # a split is a partition of the images together with their labels
    pairs = lambda d: sorted(zip(d.x.numpy().tolist(), d.y.tolist(), strict=True))  # noqa: E731
    assert sorted(pairs(train) + pairs(test)) == pairs(everything)
    torch.testing.assert_close(load_dataset("digits").x, train.x)
    assert set(test.y.tolist()) == set(range(10))


def test_digits_binary_image_and_stochastic() -> None:
    flat = load_dataset("digits")
    binary = load_dataset("digits_binary")
    assert binary.kind == "binary"
    torch.testing.assert_close(binary.x, (flat.x > 0.5).float())
    image = load_dataset("digits_image")
    assert image.kind == "image" and image.shape == (1, 8, 8)
    torch.testing.assert_close(image.x.reshape(len(image), 64), flat.x)
    sto = load_dataset("digits", binarize="stochastic", seed=3)
    assert set(sto.x.unique().tolist()) == {0.0, 1.0}
    torch.testing.assert_close(sto.x, load_dataset("digits", binarize="stochastic", seed=3).x)
    assert not torch.equal(sto.x, load_dataset("digits", binarize="stochastic", seed=4).x)
    # Bernoulli(x): E[b] = x, so the pixel means agree up to sampling noise
    assert abs(float(sto.x.mean() - flat.x.mean())) < 0.01
    assert float((sto.x - flat.x).abs().max()) <= 1.0
    assert bool((sto.x[flat.x == 0] == 0).all()) and bool((sto.x[flat.x == 1] == 1).all())
    flat_again = load_dataset("digits_image", as_image=False)
    torch.testing.assert_close(flat_again.x, flat.x)


def test_digits_subsample_is_seeded_subset() -> None:
    full = load_dataset("digits", split="test")
    part = load_dataset("digits", split="test", n=50, seed=5)
    assert len(part) == 50 and _rows(part.x) <= _rows(full.x)
    torch.testing.assert_close(part.x, load_dataset("digits", split="test", n=50, seed=5).x)
    with pytest.raises(UsageError, match="n must be between 0 and the 300 samples"):
        load_dataset("digits", split="test", n=301)


def test_toy_sets_through_load_dataset() -> None:
    d = load_dataset("moons", n=100, seed=3)
    np.testing.assert_array_equal(d.x.numpy(), make("moons", 100, seed=3))
    assert d.num_classes == 2 and d.y is not None and d.kind == "real"
    test = load_dataset("moons", n=100, seed=3, split="test")
    assert not torch.allclose(test.x, d.x)
    assert len(load_dataset("checkerboard")) == 10_000
    assert load_dataset("swissroll", n=10).y is None
    with pytest.raises(DataError, match=r"binarize needs values in \[0, 1\] but moons has"):
        load_dataset("moons", n=10, binarize=True)
    with pytest.raises(UsageError, match="split 'all' does not apply to the toy set moons"):
        load_dataset("moons", split="all")
    with pytest.raises(UsageError, match="split must be one of train, test, all, got 'val'"):
        load_dataset("moons", split="val")
    assert {"digits", "digits_binary", "digits_image", "moons"} <= set(BUNDLED)


def _decl(type_: str, shape: list[int | str], name: str = "x", span: Span | None = None) -> dict:
    return {"name": name, "type": type_, "shape": shape, "span": span}


def test_check_binds_symbols() -> None:
    assert check_against(load_dataset("digits"), _decl("real", ["D"])) == {"D": 64}
    assert check_against(load_dataset("digits_binary"), _decl("binary", ["D"])) == {"D": 64}
    image = load_dataset("digits_image")
    assert check_against(image, _decl("image", ["C", "H", "W"])) == {"C": 1, "H": 8, "W": 8}
    assert check_against(image, _decl("image", [1, "N", "N"])) == {"N": 8}
    assert check_against(image, _decl("real", [1, 8, 8]), bindings={"D": 2}) == {"D": 2}
    assert check_against(image, _decl("label", ["K"], "y")) == {"K": 10}
    moons = load_dataset("moons", n=10)
    assert check_against(moons, _decl("real", [2])) == {}
    assert check_against(moons, _decl("label", [10], "y")) == {}


@pytest.mark.parametrize(
    ("data", "decl", "bindings", "message"),
    [
        (
            "digits",
            _decl("binary", ["D"]),
            None,
            "data x is declared binary[D] but digits has values in [0, 1] that are not 0/1",
        ),
        (
            "moons",
            _decl("real", [3]),
            None,
            "data x is declared real[3] but moons has samples of shape [2] "
            "(axis 0 has size 2, not 3)",
        ),
        (
            "moons",
            _decl("real", ["C", "H", "W"]),
            None,
            "data x is declared real[C, H, W] but moons has samples of shape [2] (1 axis, not 3)",
        ),
        (
            "digits_image",
            _decl("image", ["D"]),
            None,
            "data x is declared image[D] but digits_image has samples of shape [1, 8, 8] "
            "(3 axes, not 1)",
        ),
        (
            "digits_image",
            _decl("image", ["N", "N", 8]),
            None,
            "data x is declared image[N, N, 8] but digits_image has samples of shape [1, 8, 8] "
            "(N is 1 from axis 0 but axis 1 has size 8)",
        ),
        (
            "digits",
            _decl("real", ["D"]),
            {"D": 2},
            "data x is declared real[D] but digits has samples of shape [64] "
            "(D is already 2 but axis 0 has size 64)",
        ),
        (
            "digits",
            _decl("label", [5], "y"),
            None,
            "data y is declared label[5] but digits has labels up to 9 "
            "(label[5] needs 0 <= y < 5)",
        ),
        (
            "checkerboard",
            _decl("label", ["K"], "y"),
            None,
            "data y is declared label[K] but checkerboard has no labels",
        ),
    ],
)
def test_check_messages(data: str, decl: dict, bindings: dict | None, message: str) -> None:
    dataset = load_dataset(data, n=50) if data in ("moons", "checkerboard") else load_dataset(data)
    with pytest.raises(DataError) as info:
        check_against(dataset, decl, bindings=bindings)
    assert str(info.value) == message


def test_check_values_range_nan_and_span() -> None:
    image = load_dataset("digits_image")
    scaled = type(image)(image.x * 16, None, "raw", "image", image.shape, None)
    with pytest.raises(DataError) as info:
        check_against(scaled, _decl("image", [1, 8, 8]))
    assert str(info.value) == (
        "data x is declared image[1, 8, 8] but raw has values in [0, 16]; "
        "image data must lie in [0, 1]"
    )
    x = torch.zeros(4, 2)
    x[1, 0], x[2, 1] = float("nan"), float("inf")
    broken = type(image)(x, None, "broken.npy", "real", (2,), None)
    span = Span("spec.gen", 3, 3, 3, 20)
    with pytest.raises(DataError) as info:
        check_against(broken, _decl("real", ["D"], span=span))
    assert str(info.value) == (
        "spec.gen:3:3: error: data x is declared real[D] but broken.npy has 2 non-finite values "
        "(NaN or inf)"
    )


def test_batches_resume_exactly_from_generator_state() -> None:
    d = load_dataset("moons", n=40)
    g = torch.Generator().manual_seed(0)
    it = batches(d, 8, generator=g)
    first = [next(it) for _ in range(3)]
    state = g.get_state()
    expected = [next(it) for _ in range(4)]
    g2 = torch.Generator()
    g2.set_state(state)
    resumed = batches(d, 8, generator=g2)
    for (x, y), (x2, y2) in zip(expected, [next(resumed) for _ in range(4)], strict=True):
        torch.testing.assert_close(x, x2)
        torch.testing.assert_close(y, y2)
    for x, y in first:
        assert x.shape == (8, 2) and y.shape == (8,)
        assert len(_rows(x)) == 8 and _rows(x) <= _rows(d.x)
        # labels travel with their samples
        index = [int((d.x == row).all(dim=1).nonzero()) for row in x]
        torch.testing.assert_close(y, d.y[index])
    # over many batches every sample is drawn about equally often
    counts = torch.zeros(40)
    it = batches(d, 10, generator=torch.Generator().manual_seed(1))
    for _ in range(400):
        x, _ = next(it)
        counts += (x[:, None, :] == d.x[None]).all(dim=2).sum(dim=0)
    assert counts.sum() == 4000 and counts.min() > 70 and counts.max() < 130
    with pytest.raises(UsageError, match="batch_size must be between 1 and the 40 samples"):
        next(batches(d, 41))


def test_holdout_partitions() -> None:
    d = load_dataset("digits", split="all")
    rest, out = holdout(d, 0.2, seed=1)
    assert (len(rest), len(out)) == (1438, 359)
    assert _rows(rest.x) | _rows(out.x) == _rows(d.x)
    again, _ = holdout(d, 0.2, seed=1)
    torch.testing.assert_close(again.x, rest.x)
    with pytest.raises(UsageError, match="fraction must be in"):
        holdout(d, 1.0)
