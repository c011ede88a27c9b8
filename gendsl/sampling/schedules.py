"""Time-step schedules: decreasing times ``ts`` from ``T`` to ``t_end`` (default the process's
``t_min``) with ``steps`` intervals, spaced uniformly in t, in log-SNR (over the whole range, or
after one jump from T down to a cap σ_cap), or in σ^{1/ρ}."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from gendsl.processes import Process
from gendsl.processes.edm import sigma_of_t, t_of_sigma

__all__ = [
    "SCHEDULES",
    "SIGMA_CAP",
    "karras",
    "log_snr_jump",
    "truncated_log_snr",
    "uniform_log_snr",
    "uniform_t",
]

SIGMA_CAP = 20.0
"""Default σ_cap of :func:`log_snr_jump`, chosen with ``benchmarks/samplers.py``: at 10 NFE on
the narrow 8-mode mixture it beat 10 and 40, and far beat no cap (VP's σ(T) ≈ 152)."""


def _check_steps(steps: int) -> int:
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive integer, got {steps}")
    return steps


def _ends(process: Process, t_end: float | None, device, dtype) -> tuple[Tensor, Tensor]:
    t_end = process.t_min if t_end is None else t_end
    if not 0 < t_end < process.T:
        raise ValueError(f"t_end must be in (0, T = {process.T}), got {t_end}")
    kw = {"device": device, "dtype": dtype or torch.float64}
    return torch.tensor(process.T, **kw), torch.tensor(float(t_end), **kw)


def uniform_t(
    process: Process, steps: int, *, t_end: float | None = None, device=None, dtype=None
) -> Tensor:
    """t_i = T + i/N (t_end - T), i = 0..N (Song et al. 2021)."""
    T, t_end = _ends(process, t_end, device, dtype)
    return torch.linspace(T, t_end, _check_steps(steps) + 1, device=T.device, dtype=T.dtype)


def _uniform_log_snr_between(process: Process, t_start: Tensor, t_end: Tensor, n: int) -> Tensor:
    """n + 1 times from t_start to t_end with λ uniform, the ends kept exact."""
    lam = torch.linspace(
        process.log_snr(t_start).item(),
        process.log_snr(t_end).item(),
        n + 1,
        device=t_start.device,
        dtype=t_start.dtype,
    )
    ts = process.t_from_log_snr(lam)
    ts[0], ts[-1] = t_start, t_end
    return ts


def uniform_log_snr(
    process: Process, steps: int, *, t_end: float | None = None, device=None, dtype=None
) -> Tensor:
    """λ_i uniform between λ(T) and λ(t_end), mapped back to t (Lu et al. 2022, "DPM-Solver",
    section 3.3: 'time_uniform_logSNR')."""
    T, t_end = _ends(process, t_end, device, dtype)
    return _uniform_log_snr_between(process, T, t_end, _check_steps(steps))


def karras(
    process: Process,
    steps: int,
    *,
    rho: float = 7.0,
    t_end: float | None = None,
    device=None,
    dtype=None,
) -> Tensor:
    """σ_i = (σ_max^{1/ρ} + i/N (σ_min^{1/ρ} - σ_max^{1/ρ}))^ρ in σ = s/a, mapped back to t
    (Karras et al. 2022, eq. 5, with N intervals)."""
    if not rho > 0:
        raise ValueError(f"rho must be > 0, got {rho}")
    T, t_end = _ends(process, t_end, device, dtype)
    s_max, s_min = sigma_of_t(process, T) ** (1 / rho), sigma_of_t(process, t_end) ** (1 / rho)
    frac = torch.linspace(0, 1, _check_steps(steps) + 1, device=T.device, dtype=T.dtype)
    ts = t_of_sigma(process, (s_max + frac * (s_min - s_max)) ** rho)
    ts[0], ts[-1] = T, t_end
    return ts


def log_snr_jump(
    process: Process,
    steps: int,
    *,
    sigma_cap: float = SIGMA_CAP,
    t_end: float | None = None,
    device=None,
    dtype=None,
) -> Tensor:
    """One step from T straight down to σ = σ_cap, then N - 1 steps uniform in λ from σ_cap to
    σ(t_end); plain :func:`uniform_log_snr` when σ(T) ≤ σ_cap or N = 1.

    Where σ = s/a is many times the data's scale the denoiser D(x̃; σ) ≈ E[x0] + Cov x̃ / σ² is
    nearly constant, and an exponential-integrator step (DPM-Solver++, DDIM) is exact for
    constant D (Lu et al. 2022b, eq. 9), so steps up there are wasted: VP with β_max = 20 has
    σ(T) ≈ 152 and a uniform-λ schedule spends 4 of 9 steps above σ = 3.  The cap plays the role
    of EDM's σ_max = 80 for data of unit scale (Karras et al. 2022, section 5), lowered to 20
    because the first step from σ(T) is free, and the freed steps go where D changes: σ near the
    distance between modes and near their width.
    """
    if not sigma_cap > 0:
        raise ValueError(f"sigma_cap must be > 0, got {sigma_cap}")
    T, t_end = _ends(process, t_end, device, dtype)
    cap = torch.tensor(float(sigma_cap), device=T.device, dtype=T.dtype)
    if _check_steps(steps) == 1 or not sigma_of_t(process, T) > cap > sigma_of_t(process, t_end):
        return _uniform_log_snr_between(process, T, t_end, steps)
    rest = _uniform_log_snr_between(process, t_of_sigma(process, cap), t_end, steps - 1)
    return torch.cat([T[None], rest])


def truncated_log_snr(
    process: Process,
    steps: int,
    *,
    sigma_cap: float = SIGMA_CAP,
    t_end: float | None = None,
    device=None,
    dtype=None,
) -> Tensor:
    """λ uniform from σ = σ_cap (or σ(T) if that is lower) down to σ(t_end): the schedule
    *starts* at the cap, and :func:`gendsl.sampling.sample` draws the initial state from the
    marginal there, N(0, (a² σ_data² + s²) I) with σ_data = 1 — the start of EDM (Karras et
    al. 2022, section 5, σ_max = 80 for unit-scale data).

    Like :func:`log_snr_jump` it spends no evaluation where σ ≫ the data scale, but it takes no
    step from σ(T) either: with a trained network that step multiplies the network's error at
    high noise by about σ(T)/σ_cap (the DDIM update x̃_s = x̃_t − (σ_t − σ_s) ε̂), a bias that
    more steps never remove.  The price is the prior's mismatch at σ_cap, of relative size
    Var(data)/σ_cap² in variance.
    """
    if not sigma_cap > 0:
        raise ValueError(f"sigma_cap must be > 0, got {sigma_cap}")
    T, t_end = _ends(process, t_end, device, dtype)
    cap = torch.tensor(float(sigma_cap), device=T.device, dtype=T.dtype)
    if not sigma_of_t(process, T) > cap > sigma_of_t(process, t_end):
        return _uniform_log_snr_between(process, T, t_end, _check_steps(steps))
    return _uniform_log_snr_between(process, t_of_sigma(process, cap), t_end, _check_steps(steps))


SCHEDULES: dict[str, Callable[..., Tensor]] = {
    "uniform_t": uniform_t,
    "uniform_log_snr": uniform_log_snr,
    "log_snr_jump": log_snr_jump,
    "truncated_log_snr": truncated_log_snr,
    "karras": karras,
}
