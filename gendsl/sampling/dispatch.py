"""One entry point for every sampler: draw the prior, build the time steps, count network
evaluations, run."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch
from torch import Tensor

from gendsl.errors import UsageError
from gendsl.processes import Process, ScoreFn
from gendsl.sampling.common import Callback, Sampler
from gendsl.sampling.dpm_solver import dpm_solver
from gendsl.sampling.ode import ddim, ode
from gendsl.sampling.schedules import SCHEDULES
from gendsl.sampling.stochastic import ancestral, euler_maruyama, pc, sde
from gendsl.sampling.unipc import unipc

__all__ = ["DEFAULTS", "METHODS", "SCHEDULE_KNOBS", "SampleResult", "sample", "start_std"]

METHODS: dict[str, Sampler] = {
    "ancestral": ancestral,
    "euler_maruyama": euler_maruyama,
    "sde": sde,
    "ode": ode,
    "pc": pc,
    "ddim": ddim,
    "dpm_solver": dpm_solver,
    "unipc": unipc,
}

SCHEDULE_KNOBS = ("rho", "sigma_cap")
"""Knobs of :func:`sample` that go to the schedule rather than the sampler."""

# (steps, schedule) per method when the caller gives none; chosen from benchmarks/samplers.py
# (exact scores) and benchmarks/diffusion_2d.py (trained networks).  The deterministic
# exponential-integrator samplers start at σ = 20 (truncated_log_snr): on an exact score the
# single jump from σ(T) of log_snr_jump is as accurate and wins at 10 NFE, but with a trained
# network it multiplies the network's error at σ(T) by σ(T)/σ_cap ≈ 7 for the VP SDE, a bias
# that more steps never remove (`benchmarks/diffusion_2d.py --specs vp_sde --data moons
# --schedule log_snr_jump`: dpm_solver W2 0.43 at 100 steps vs 0.21 when truncated).
DEFAULTS: dict[str, tuple[int, str]] = {
    "ancestral": (200, "uniform_t"),
    "euler_maruyama": (500, "uniform_t"),
    "sde": (500, "uniform_t"),
    "ode": (50, "uniform_log_snr"),
    "pc": (200, "uniform_t"),
    "ddim": (50, "truncated_log_snr"),
    "dpm_solver": (20, "truncated_log_snr"),
    "unipc": (20, "truncated_log_snr"),
}


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
    sampler (``eta``, ``order``, ``snr``, ``method`` of ``sde``/``ode`` as ``solver``, ...),
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
    if "solver" in knobs:
        knobs["method"] = knobs.pop("solver")
    counted = _Counted(score_fn)
    out = METHODS[method](process, counted, x, ts, generator=generator, callback=callback, **knobs)
    return SampleResult(out, counted.calls)
