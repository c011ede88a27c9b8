"""bind_sizes: the one place where a spec's symbolic sizes are bound from a data set (used by
``gendsl.lower.load`` and the run commands)."""

from __future__ import annotations

import pytest
import torch

from gendsl.analysis import check_text
from gendsl.data import Dataset
from gendsl.errors import DataError, UsageError
from gendsl.lower import load
from gendsl.lower.sizes import bind_sizes

GAUSS = "model g {{ data x : real[D]; {cond} x ~ Normal(0, 1); loss elbo }}"


def dataset(d: int, labels: int | None = None) -> Dataset:
    x = torch.randn(6, d, generator=torch.Generator().manual_seed(0))
    y = None if labels is None else torch.arange(6) % labels
    return Dataset(x, y, "toy", "real", (d,), labels)


def test_sizes_come_from_the_data_and_the_given_bindings():
    (checked,) = check_text(GAUSS.format(cond=""))
    assert bind_sizes(checked, dataset(3)) == {"D": 3}
    assert bind_sizes(checked, dataset(3), {"D": 3, "H": 5}) == {"D": 3, "H": 5}
    assert bind_sizes(checked, None, {"D": 4}) == {"D": 4}
    with pytest.raises(
        DataError, match=r"data x is declared real\[D\].*D is already 4 but axis 0 has size 3"
    ):
        bind_sizes(checked, dataset(3), {"D": 4})


def test_a_label_condition_binds_its_classes_from_the_labels():
    (checked,) = check_text(GAUSS.format(cond="condition c : label[K];"))
    assert bind_sizes(checked, dataset(2, labels=3)) == {"D": 2, "K": 3}
    with pytest.raises(UsageError, match="model g is conditioned on the label c, but toy has no"):
        bind_sizes(checked, dataset(2))


def test_one_data_set_binds_exactly_one_data_variable():
    text = (
        "model m { data x : real[D]; data y : real[D]; x ~ Normal(0, 1); y ~ Normal(x, 1); "
        "loss elbo }"
    )
    (checked,) = check_text(text)
    with pytest.raises(UsageError, match="declares 2 data variables; training from one data set"):
        bind_sizes(checked, dataset(2))


def test_load_binds_from_data():
    model = load(GAUSS.format(cond=""), data=dataset(5))
    assert model.sizes["D"] == 5
