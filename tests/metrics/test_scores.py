"""The Inception Score against hand-computed values and an independent KL formula."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.special import rel_entr

from gendsl.errors import UsageError
from gendsl.metrics import inception_score


def test_extremes_are_one_and_the_number_of_classes() -> None:
    k = 7
    uniform = torch.full((70, k), 1.0 / k)
    assert inception_score(uniform, splits=1).mean == pytest.approx(1.0, abs=1e-12)
    one_hot = torch.eye(k).repeat(10, 1)  # confident and balanced
    assert inception_score(one_hot, splits=1).mean == pytest.approx(k, rel=1e-12)
    same_class = torch.eye(k)[[2] * 70]  # confident but one class
    assert inception_score(same_class, splits=1).mean == pytest.approx(1.0, abs=1e-12)


def test_half_confident_half_unsure() -> None:
    """p(y|x) = (1, 0) for half the images and (1/2, 1/2) for the rest: p(y) = (3/4, 1/4),
    KL = log(4/3) and (1/2) log(4/3), so IS = (4/3)^(3/4)."""
    probs = torch.tensor([[1.0, 0.0], [0.5, 0.5]]).repeat(50, 1)
    assert inception_score(probs, splits=1).mean == pytest.approx((4 / 3) ** 0.75, rel=1e-12)


def test_split_statistics() -> None:
    """Two splits scoring 2 and 1: mean 1.5, std 0.5 (ddof 0), standard error 0.5."""
    balanced = torch.eye(2).repeat(5, 1)
    unsure = torch.full((10, 2), 0.5)
    score = inception_score(torch.cat([balanced, unsure]), splits=2)
    assert score.mean == pytest.approx(1.5) and score.splits == 2
    assert score.std == pytest.approx(0.5) and score.stderr == pytest.approx(0.5)
    # a remainder of n mod splits rows is left out, as in the original code
    assert inception_score(torch.cat([balanced, unsure, unsure[:1]]), splits=2).mean == 1.5


def test_matches_scipy_relative_entropy() -> None:
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.full(10, 0.3), size=600)
    expected = [
        math.exp(rel_entr(part, part.mean(0, keepdims=True)).sum(1).mean())
        for part in np.split(probs, 6)
    ]
    score = inception_score(torch.from_numpy(probs), splits=6)
    assert score.mean == pytest.approx(np.mean(expected), rel=1e-10)
    assert score.std == pytest.approx(np.std(expected), rel=1e-8)
    assert score.stderr == pytest.approx(np.std(expected, ddof=1) / math.sqrt(6), rel=1e-8)


def test_bad_arguments() -> None:
    with pytest.raises(UsageError, match=r"1 <= splits <= n, got shape \[3, 2\] and splits = 4"):
        inception_score(torch.full((3, 2), 0.5), splits=4)


def test_a_split_holds_at_least_ten_samples_so_a_few_samples_do_not_score_one():
    from gendsl.metrics.scores import split_count

    counts = [split_count(n) for n in (1, 8, 19, 20, 99, 100, 500, 5000)]
    assert counts == [1, 1, 1, 2, 9, 10, 10, 10]
    # eight confident, balanced samples in one split: IS = K (here 8), not the 1 of 8 splits
    probs = torch.eye(8)
    assert inception_score(probs, splits=split_count(len(probs))).mean == pytest.approx(8.0)
    assert inception_score(probs, splits=8).mean == pytest.approx(1.0)
