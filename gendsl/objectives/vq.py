"""Vector quantisation (VQ-VAE, van den Oord et al. 2017): nearest-codebook lookup with a
straight-through gradient, the codebook and commitment losses, the EMA codebook update, and
codebook usage statistics.

Latent grids are ``[B, dim]`` or ``[B, dim, *spatial]``: the code vector is along axis 1.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = [
    "VectorQuantizer",
    "codebook_loss",
    "commitment_loss",
    "ema_codebook_update",
    "nearest_code",
    "perplexity",
    "straight_through",
]


def _flat(z: Tensor) -> Tensor:
    """``[B, dim, *spatial]`` -> ``[B·prod(spatial), dim]``."""
    return z.movedim(1, -1).reshape(-1, z.shape[1])


def nearest_code(z_e: Tensor, codebook: Tensor) -> Tensor:
    """k(x) = argmin_j ‖z_e(x) − e_j‖₂ for every code vector (van den Oord et al. 2017, eq. 1);
    indices of shape ``[B, *spatial]``."""
    flat = _flat(z_e)
    d2 = flat.pow(2).sum(1, keepdim=True) - 2 * flat @ codebook.T + codebook.pow(2).sum(1)[None, :]
    return d2.argmin(1).reshape(z_e.shape[0], *z_e.shape[2:])


def straight_through(z_e: Tensor, z_q: Tensor) -> Tensor:
    """z_e + sg[z_q − z_e]: the value of z_q with the gradient of z_e (the straight-through
    estimator, van den Oord et al. 2017, sec. 3.1)."""
    return z_e + (z_q - z_e).detach()


def codebook_loss(z_e: Tensor, z_q: Tensor) -> Tensor:
    """‖sg[z_e] − e‖² per data point (summed over the code grid), eq. 3's second term."""
    return (z_e.detach() - z_q).pow(2).reshape(z_e.shape[0], -1).sum(1)


def commitment_loss(z_e: Tensor, z_q: Tensor) -> Tensor:
    """‖z_e − sg[e]‖² per data point (summed over the code grid), eq. 3's third term (times β)."""
    return (z_e - z_q.detach()).pow(2).reshape(z_e.shape[0], -1).sum(1)


def ema_codebook_update(
    counts: Tensor,
    sums: Tensor,
    z_e: Tensor,
    index: Tensor,
    *,
    decay: float,
    eps: float = 1e-5,
) -> tuple[Tensor, Tensor, Tensor]:
    """One exponential-moving-average codebook step (van den Oord et al. 2017, appendix A.1).

    N_i ← γ N_i + (1 − γ) n_i,  m_i ← γ m_i + (1 − γ) Σ_{j: k_j = i} z_e,j, then Laplace
    smoothing Ñ_i = (N_i + ε) / (Σ N + K ε) · Σ N and e_i = m_i / Ñ_i.  Returns the new
    ``(counts, sums, codebook)``; ``counts`` holds the unsmoothed N.
    """
    K = counts.shape[0]
    flat = _flat(z_e.detach())
    onehot = torch.nn.functional.one_hot(index.reshape(-1), K).to(flat.dtype)
    counts = decay * counts + (1 - decay) * onehot.sum(0)
    sums = decay * sums + (1 - decay) * onehot.T @ flat
    total = counts.sum()
    smoothed = (counts + eps) / (total + K * eps) * total
    return counts, sums, sums / smoothed[:, None]


def perplexity(index: Tensor, K: int) -> Tensor:
    """exp(H(p̄)) of the average code usage p̄ over a batch: K when every code is used equally,
    1 when one code takes everything."""
    p = torch.bincount(index.reshape(-1), minlength=K).to(torch.float64)
    p = p / p.sum()
    return torch.exp(-(p * torch.log(p.clamp_min(1e-12))).sum())


class VectorQuantizer(nn.Module):
    """A codebook of ``K`` vectors of size ``dim``.

    ``forward(z_e)`` returns the straight-through quantised grid and remembers ``z_e``, ``z_q``
    and the indices of the last call (``last``) so the objective can add its terms.  With
    ``ema`` the codebook is a buffer updated by :func:`ema_codebook_update` on every training
    call; otherwise it is a parameter trained by :func:`codebook_loss`.
    """

    def __init__(self, K: int, dim: int, *, ema: bool = False, decay: float = 0.99):
        super().__init__()
        if not 0.0 < decay < 1.0:
            raise ValueError(f"ema decay must be in (0, 1), got {decay}")
        self.K, self.dim, self.ema, self.decay = K, dim, ema, decay
        init = torch.randn(K, dim) / dim**0.5
        if ema:
            self.register_buffer("codebook", init)
            self.register_buffer("counts", torch.ones(K))
            self.register_buffer("sums", init.clone())
        else:
            self.codebook = nn.Parameter(init)
        self.last: dict[str, Tensor] = {}

    def forward(self, z_e: Tensor) -> Tensor:
        if z_e.shape[1] != self.dim:
            raise ValueError(f"quantize expects vectors of size {self.dim}, got {z_e.shape[1]}")
        index = nearest_code(z_e, self.codebook)
        z_q = self.lookup(index)
        if self.ema and self.training and torch.is_grad_enabled():
            with torch.no_grad():
                counts, sums, book = ema_codebook_update(
                    self.counts, self.sums, z_e, index, decay=self.decay
                )
                self.counts.copy_(counts)
                self.sums.copy_(sums)
                self.codebook.copy_(book)
        self.last = {"z_e": z_e, "z_q": z_q, "index": index}
        return straight_through(z_e, z_q)

    def lookup(self, index: Tensor) -> Tensor:
        """The code vectors of ``index`` ``[B, *spatial]`` as a grid ``[B, dim, *spatial]``."""
        return self.codebook[index].movedim(-1, 1)
