"""The device-side metric rows of the training loop: means, the first non-finite step, the
window a checkpoint carries (and the per-name lists of older checkpoints)."""

from __future__ import annotations

import math

import pytest
import torch

from gendsl.errors import TrainingError
from gendsl.train.tally import Tally

CPU = torch.device("cpu")


def _tally(values: dict[int, tuple[float, float]], capacity: int = 10) -> Tally:
    tally = Tally(CPU, capacity)
    for step, (loss, norm) in values.items():
        tally.add(step, {"loss": torch.tensor(loss), "grad_norm": torch.tensor(norm)})
    return tally


def test_window_means_are_the_float64_means_of_the_float32_values():
    values = {11: (1.5, 0.1), 12: (2.25, 0.2), 13: (0.1, 0.3)}
    tally = _tally(values)
    assert tally.settle() is None
    expected = sum(float(torch.tensor(v[0])) for v in values.values()) / 3
    assert tally.window_means()["loss"] == expected
    tally.clear()
    tally.add(14, {"loss": 4.0, "grad_norm": torch.tensor(1.0)})  # a float is accepted
    assert tally.window_means() == {"loss": 4.0, "grad_norm": 1.0}


def test_the_first_non_finite_step_is_named_with_its_bad_values():
    tally = _tally({21: (1.0, 1.0), 22: (1.0, math.inf), 23: (math.nan, math.nan)})
    with pytest.raises(TrainingError) as info:
        tally.check(20, "run/checkpoint.pt")
    assert str(info.value) == (
        "training diverged at step 22: grad_norm = inf; "
        "the checkpoint of step 20 at run/checkpoint.pt is kept"
    )


def test_a_later_sync_point_reads_only_new_rows():
    tally = _tally({1: (1.0, 1.0), 2: (2.0, 2.0)})
    assert tally.settle() is None
    tally.add(3, {"loss": torch.tensor(math.nan), "grad_norm": torch.tensor(1.0)})
    step, bad = tally.settle()
    assert step == 3 and list(bad) == ["loss"] and math.isnan(bad["loss"])
    assert tally.settle() is None  # read once
    with pytest.raises(TrainingError, match="no checkpoint was written"):
        _tally({5: (math.inf, 1.0)}).check(0, "x")


def test_the_window_survives_a_checkpoint_round_trip():
    tally = _tally({6: (1.0, 2.0), 7: (3.0, 4.0)})
    tally.settle()
    restored = Tally(CPU, 10)
    restored.load_state_dict(tally.state_dict())
    assert restored.window_means() == tally.window_means() == {"loss": 2.0, "grad_norm": 3.0}
    restored.add(8, {"loss": torch.tensor(5.0), "grad_norm": torch.tensor(6.0)})
    assert restored.window_means() == {"loss": 3.0, "grad_norm": 4.0}
    older = Tally(CPU, 10)
    older.load_state_dict({"loss": [1.0, 3.0], "grad_norm": [2.0, 4.0]})  # before the rows
    assert older.window_means() == {"loss": 2.0, "grad_norm": 3.0}
    assert Tally(CPU, 10).state_dict()["rows"] is None
