"""Forward processes as objects: the kernel ``marginal(t)``, SDE terms, reverse SDE and PF-ODE,
conversions between network parameterisations, and an exact Gaussian-mixture score."""

from gendsl.processes.affine import AffineSDE, integrate_kernel
from gendsl.processes.base import ForwardSDE, Process, ReverseSDE, ScoreFn, as_time, expand_like
from gendsl.processes.chain import DiscreteChain, alphas_cumprod
from gendsl.processes.edm import sigma_of_t, t_of_sigma
from gendsl.processes.mixture import GaussianMixture
from gendsl.processes.params import (
    eps_from_score,
    eps_from_v,
    eps_from_x0,
    score_from_eps,
    score_from_x0,
    v_from_eps_x0,
    x0_from_eps,
    x0_from_score,
    x0_from_v,
)
from gendsl.processes.sdes import VESDE, VPSDE, SubVPSDE

__all__ = [
    "VESDE",
    "VPSDE",
    "AffineSDE",
    "DiscreteChain",
    "ForwardSDE",
    "GaussianMixture",
    "Process",
    "ReverseSDE",
    "ScoreFn",
    "SubVPSDE",
    "alphas_cumprod",
    "as_time",
    "eps_from_score",
    "eps_from_v",
    "eps_from_x0",
    "expand_like",
    "integrate_kernel",
    "score_from_eps",
    "score_from_x0",
    "sigma_of_t",
    "t_of_sigma",
    "v_from_eps_x0",
    "x0_from_eps",
    "x0_from_score",
    "x0_from_v",
]
