"""An affine process x_t = a_t x0 + s_t ε seen as a variance-exploding one (Karras et al. 2022,
"Elucidating the Design Space of Diffusion-Based Generative Models", Sec. 4): the scaled
variable y = x_t / a_t = x0 + σ ε has noise level σ(t) = s_t / a_t, and the network's input is
scaled by c_in so that it has unit variance."""

from __future__ import annotations

import torch
from torch import Tensor

from gendsl.processes.base import Process

__all__ = ["c_in", "sigma_of_t", "t_of_sigma"]


def sigma_of_t(process: Process, t: Tensor) -> Tensor:
    """σ(t) = s_t / a_t = exp(-λ(t)/2), the noise level of the scaled variable x_t / a_t
    (Karras et al. 2022, eq. 4), with λ the log-SNR of :meth:`Process.log_snr`."""
    return torch.exp(-0.5 * process.log_snr(t))


def t_of_sigma(process: Process, sigma: Tensor) -> Tensor:
    """The time at which s_t / a_t = σ: the log-SNR is λ = -2 log σ, so t = λ⁻¹(-2 log σ)."""
    return process.t_from_log_snr(-2 * torch.log(sigma))


def c_in(s_t: Tensor, *, sigma_data: float, a_t: Tensor | float = 1.0) -> Tensor:
    """c_in = 1 / √(a_t² σ_data² + s_t²), so that c_in x_t has unit variance when x0 has
    variance σ_data².  With a_t = 1 and s_t = σ it is Karras et al. 2022 (Table 1)
    c_in(σ) = 1 / √(σ² + σ_data²) of the scaled variable y = x_t / a_t; for x_t = a_t y it is
    the same factor divided by a_t."""
    return torch.rsqrt(a_t**2 * sigma_data**2 + s_t**2)
