"""Option ranges: the checker refuses what the back end would refuse, at the value."""

from __future__ import annotations

import pytest
import torch

from gendsl.analysis.ranges import out_of_range, range_of
from gendsl.errors import UsageError
from gendsl.processes.sdes import VPSDE
from gendsl.sampling.dispatch import sample
from gendsl.value_range import Range


@pytest.mark.parametrize(
    ("r", "inside", "outside", "text"),
    [
        (Range(0, low_open=True), [1e-9, 5], [0, -1], "> 0"),
        (Range(1), [1, 7], [0, 0.5], ">= 1"),
        (Range(0, 1, high_open=True), [0, 0.999], [1, 1.5, -0.1], "in [0, 1)"),
        (Range(0, 1, low_open=True, high_open=True), [0.5], [0, 1], "in (0, 1)"),
        (Range(values=(1, 2, 3)), [1, 3], [0, 4], "1, 2 or 3"),
        (Range(2, even=True), [2, 32], [0, 7], "even and >= 2"),
    ],
)
def test_a_range_holds_and_reads(r, inside, outside, text):
    assert all(r.holds(v) for v in inside)
    assert not any(r.holds(v) for v in outside)
    assert r.text() == text


def test_lists_are_checked_item_by_item_and_nan_never_fits():
    assert out_of_range("MLP", "hidden", [64, 0, 3], family=None) == (Range(1), 0)
    assert out_of_range("MLP", "hidden", [64, 32]) is None
    assert out_of_range("train", "lr", float("nan")) is not None
    assert out_of_range("train", "lr", None) is None  # no value: the default applies


def _score(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    return -x


@pytest.mark.parametrize("method", ["dpm_solver", "unipc", "ddim", "ancestral"])
def test_diffusion_sampler_steps_agree_with_the_sampler(method):
    process = VPSDE()
    low = range_of(method, "steps", family="diffusion").low
    gen = torch.Generator().manual_seed(0)
    sample(process, _score, (4, 2), method=method, steps=int(low), generator=gen)
    with pytest.raises(UsageError, match="steps must be an integer >= 2"):
        sample(process, _score, (4, 2), method=method, steps=int(low) - 1, generator=gen)


@pytest.mark.parametrize("method", ["dpm_solver", "unipc"])
@pytest.mark.parametrize("order", [0, 1, 3, 4])
def test_solver_orders_agree_with_the_sampler(method, order):
    refused = out_of_range(method, "order", order, family="diffusion") is not None
    gen = torch.Generator().manual_seed(0)
    if refused:
        with pytest.raises(ValueError, match="order must be 1, 2 or 3"):
            sample(VPSDE(), _score, (4, 2), method=method, steps=4, order=order, generator=gen)
    else:
        sample(VPSDE(), _score, (4, 2), method=method, steps=4, order=order, generator=gen)
