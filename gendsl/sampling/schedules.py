"""Time-step schedules: decreasing times ``ts`` from ``T`` to ``t_end`` (default the process's
``t_min``) with ``steps`` intervals, spaced uniformly in t, in log-SNR, or in σ^{1/ρ}."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from gendsl.processes import Process

__all__ = ["SCHEDULES", "karras", "sigma_of_t", "t_of_sigma", "uniform_log_snr", "uniform_t"]


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


def sigma_of_t(process: Process, t: Tensor) -> Tensor:
    """σ(t) = s_t / a_t = exp(-λ(t)/2), the noise level of the scaled variable x_t / a_t
    (Karras et al. 2022, "Elucidating the Design Space of Diffusion-Based Generative Models",
    eq. 4)."""
    return torch.exp(-0.5 * process.log_snr(t))


def t_of_sigma(process: Process, sigma: Tensor) -> Tensor:
    """The time at which s_t / a_t = σ."""
    return process.t_from_log_snr(-2 * torch.log(sigma))


def uniform_t(
    process: Process, steps: int, *, t_end: float | None = None, device=None, dtype=None
) -> Tensor:
    """t_i = T + i/N (t_end - T), i = 0..N (Song et al. 2021)."""
    T, t_end = _ends(process, t_end, device, dtype)
    return torch.linspace(T, t_end, _check_steps(steps) + 1, device=T.device, dtype=T.dtype)


def uniform_log_snr(
    process: Process, steps: int, *, t_end: float | None = None, device=None, dtype=None
) -> Tensor:
    """λ_i uniform between λ(T) and λ(t_end), mapped back to t (Lu et al. 2022, "DPM-Solver",
    section 3.3: 'time_uniform_logSNR')."""
    T, t_end = _ends(process, t_end, device, dtype)
    lam = torch.linspace(
        process.log_snr(T).item(),
        process.log_snr(t_end).item(),
        _check_steps(steps) + 1,
        device=T.device,
        dtype=T.dtype,
    )
    ts = process.t_from_log_snr(lam)
    ts[0], ts[-1] = T, t_end
    return ts


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


SCHEDULES: dict[str, Callable[..., Tensor]] = {
    "uniform_t": uniform_t,
    "uniform_log_snr": uniform_log_snr,
    "karras": karras,
}
