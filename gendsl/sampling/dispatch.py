"""One entry point for every sampler: draw the prior, build the time steps, count network
evaluations, run."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import NamedTuple

import torch
from torch import Tensor

from gendsl import sampler_registry
from gendsl.errors import UsageError
from gendsl.processes import Process, ScoreFn
from gendsl.sampling.bound import DIFFUSION
from gendsl.sampling.common import Callback, Sampler
from gendsl.sampling.schedules import SCHEDULES

__all__ = ["DEFAULTS", "METHODS", "SCHEDULE_KNOBS", "SampleResult", "sample", "start_std"]

#: The samplers of the reverse diffusion, by name (bound in :mod:`gendsl.sampling.bound`).
METHODS: Mapping[str, Sampler] = DIFFUSION

#: Knobs of :func:`sample` that go to the schedule rather than the sampler.
SCHEDULE_KNOBS = tuple(
    dict.fromkeys(k for call in sampler_registry.SCHEDULE_CALLS.values() for k in call.options)
)

#: (steps, schedule) per sampler when the caller gives none: the registry's measured defaults
#: (:mod:`gendsl.sampler_registry` says how they were chosen).
DEFAULTS: Mapping[str, tuple[int, str]] = MappingProxyType(
    {
        name: (decl.default_steps, decl.default_schedule)
        for name, decl in sampler_registry.of_family("diffusion").items()
        if name in METHODS and decl.default_steps is not None and decl.default_schedule
    }
)


class SampleResult(NamedTuple):
    """Samples and the number of score-network evaluations spent on them."""

    x: Tensor
    nfe: int


class _Counted:
    """A score function that counts its calls."""

    def __init__(self, score_fn: ScoreFn):
        self.score_fn, self.calls = score_fn, 0

    def __call__(self, x: Tensor, t: Tensor) -> Tensor:
        self.calls += 1
        return self.score_fn(x, t)


def start_std(process: Process, t: Tensor, *, sigma_data: float = 1.0) -> Tensor:
    """The standard deviation of the marginal at t for data of scale σ_data:
    sqrt(a_t² σ_data² + s_t²), the prior N(0, s_T²) when a_T ≈ 0."""
    a_t, s_t = process.marginal(t)
    return torch.sqrt(a_t**2 * sigma_data**2 + s_t**2)


def sample(
    process: Process,
    score_fn: ScoreFn,
    shape: Sequence[int],
    *,
    method: str = "ode",
    steps: int | None = None,
    schedule: str | None = None,
    denoise: bool = True,
    t_end: float | None = None,
    generator: torch.Generator | None = None,
    callback: Callback | None = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
    **knobs,
) -> SampleResult:
    """Draw ``shape`` samples with ``METHODS[method]``.

    ``steps`` intervals of the ``schedule`` (a name in ``SCHEDULES``) run from T to ``t_end``
    (default the process's ``t_min``); with ``denoise`` the last of them is the Tweedie step from
    there to t = 0 (see :func:`~gendsl.sampling.common.lands_on_data`).  ``knobs`` go to the
    sampler (``eta``, ``order``, ``snr``, ``solver`` of ``sde``/``ode``, ...),
    except ``rho`` and ``sigma_cap``, which go to the schedule.
    """
    if method not in METHODS:
        known = ", ".join(sorted(METHODS))
        raise UsageError(f"unknown sampling method {method!r}; known methods: {known}")
    default_steps, default_schedule = DEFAULTS[method]
    steps = default_steps if steps is None else steps
    schedule = default_schedule if schedule is None else schedule
    if schedule not in SCHEDULES:
        known = ", ".join(sorted(SCHEDULES))
        raise UsageError(f"unknown schedule {schedule!r}; known schedules: {known}")
    if not isinstance(steps, int) or steps < (2 if denoise else 1):
        raise UsageError(f"steps must be an integer >= {2 if denoise else 1}, got {steps}")
    x = process.prior_sample(shape, generator=generator, device=device, dtype=dtype)
    sched_knobs = {k: knobs.pop(k) for k in SCHEDULE_KNOBS if k in knobs}
    ts = SCHEDULES[schedule](
        process,
        steps - 1 if denoise else steps,
        t_end=t_end,
        device=x.device,
        dtype=x.dtype,
        **sched_knobs,
    )
    if ts[0] < process.T:  # a schedule that starts below T: draw from the marginal there
        x = x * (start_std(process, ts[0]) / process.prior_std(device=x.device, dtype=x.dtype))
    if denoise:
        ts = torch.cat([ts, ts.new_zeros(1)])
    counted = _Counted(score_fn)
    out = METHODS[method](process, counted, x, ts, generator=generator, callback=callback, **knobs)
    return SampleResult(out, counted.calls)
