"""Samplers as pure functions with one signature, time-step schedules, and a dispatcher."""

from gendsl.sampling.common import FINAL_STEPS, Callback, Sampler, denoise, lands_on_data
from gendsl.sampling.dispatch import DEFAULTS, METHODS, SCHEDULE_KNOBS, SampleResult, sample
from gendsl.sampling.dpm_solver import dpm_solver
from gendsl.sampling.ode import ddim, ode
from gendsl.sampling.schedules import (
    SCHEDULES,
    SIGMA_CAP,
    karras,
    log_snr_jump,
    sigma_of_t,
    t_of_sigma,
    truncated_log_snr,
    uniform_log_snr,
    uniform_t,
)
from gendsl.sampling.stochastic import ancestral, euler_maruyama, pc, sde
from gendsl.sampling.unipc import unipc

__all__ = [
    "DEFAULTS",
    "FINAL_STEPS",
    "METHODS",
    "SCHEDULES",
    "SCHEDULE_KNOBS",
    "SIGMA_CAP",
    "Callback",
    "SampleResult",
    "Sampler",
    "ancestral",
    "ddim",
    "denoise",
    "dpm_solver",
    "euler_maruyama",
    "karras",
    "lands_on_data",
    "log_snr_jump",
    "ode",
    "pc",
    "sample",
    "sde",
    "sigma_of_t",
    "t_of_sigma",
    "truncated_log_snr",
    "uniform_log_snr",
    "uniform_t",
    "unipc",
]
