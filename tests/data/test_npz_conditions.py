"""Real conditions in data files: an ``.npz`` with ``x`` and ``c`` (embeddings [n, E] or
sequences [n, L, E]) loads with its rows aligned to the samples through every split and
subsample; a bad ``c`` is a clear DataError; the caption embeddings are fixed by their seed."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gendsl.data import load_dataset
from gendsl.data.captions import CAPTION_LENGTH, caption_embeddings, captions, write_conditioned
from gendsl.errors import DataError


def _indexed(path, n: int = 40):
    """x and c that both hold the row number, so alignment can be read back."""
    rows = np.arange(n, dtype=np.float32)
    x = np.repeat(rows[:, None], 2, axis=1)
    c = np.broadcast_to(rows[:, None, None], (n, 3, 4)).copy()
    np.savez(path, x=x, c=c, y=np.arange(n) % 3)
    return path


@pytest.mark.parametrize(("split", "n"), [("train", None), ("test", None), ("all", 7)])
def test_conditions_stay_aligned_with_their_samples(tmp_path, split, n):
    data = load_dataset(_indexed(tmp_path / "d.npz"), split=split, n=n)
    assert data.c is not None and data.c.shape[1:] == (3, 4)
    assert (data.c == data.x[:, :1, None]).all()
    assert (data.y == data.x[:, 0].long() % 3).all()
    part = data.subset(torch.tensor([2, 0]))
    assert (part.c[:, 0, 0] == part.x[:, 0]).all()


def test_files_without_c_have_no_conditions(tmp_path):
    np.savez(tmp_path / "plain.npz", x=np.zeros((5, 2)))
    assert load_dataset(tmp_path / "plain.npz", split="all").c is None


@pytest.mark.parametrize(
    ("c", "message"),
    [
        (
            np.zeros((4, 3)),
            "has shape [4, 3]; expected one row per sample of x: [5, E] or [5, L, E]",
        ),
        (np.zeros(5), "has shape [5]; expected one row per sample of x: [5, E] or [5, L, E]"),
        (np.array([["a"]] * 5), "expected a numeric array, got dtype <U1"),
        (np.full((5, 2), np.nan), "has non-finite values (NaN or inf)"),
    ],
)
def test_a_bad_condition_array_is_a_data_error(tmp_path, c, message):
    path = tmp_path / "bad.npz"
    np.savez(path, x=np.zeros((5, 2)), c=c)
    with pytest.raises(DataError) as err:
        load_dataset(path, split="all")
    assert str(err.value).startswith(f"{path}: condition array 'c'")
    assert str(err.value).endswith(message)


def test_caption_embeddings_are_fixed_word_vectors():
    labels = [7, 7, 3, 0]
    words = captions(labels, seed=1)
    assert all(len(w) == CAPTION_LENGTH for w in words)
    assert all(("seven" in w or "7" in w) for w in words[:2]) and (
        "three" in words[2] or "3" in words[2]
    )
    c = caption_embeddings(labels, dim=8, seed=1)
    assert c.shape == (4, CAPTION_LENGTH, 8) and c.dtype == np.float32
    np.testing.assert_array_equal(c, caption_embeddings(labels, dim=8, seed=1))
    # one word, one vector: equal words at equal positions embed equally
    for i, j in [(0, 1), (0, 2), (1, 3)]:
        for k in range(CAPTION_LENGTH):
            same = words[i][k] == words[j][k]
            assert np.array_equal(c[i, k], c[j, k]) == same


def test_write_conditioned_round_trips(tmp_path):
    x, c = np.random.rand(6, 1, 8, 8).astype(np.float32), np.ones((6, 2, 3), np.float32)
    data = load_dataset(write_conditioned(tmp_path / "w.npz", x, c), split="all")
    np.testing.assert_array_equal(data.c.numpy(), c)
    with pytest.raises(ValueError, match="5 conditions for 6 samples"):
        write_conditioned(tmp_path / "v.npz", x, c[:5])


def test_the_word_table_does_not_depend_on_the_caption_seed():
    a, b = caption_embeddings([4] * 50, dim=8, seed=0), caption_embeddings([4] * 50, dim=8, seed=3)
    words_a, words_b = captions([4] * 50, seed=0), captions([4] * 50, seed=3)
    i, j = next((i, j) for i in range(50) for j in range(50) if words_a[i] == words_b[j])
    np.testing.assert_array_equal(a[i], b[j])
