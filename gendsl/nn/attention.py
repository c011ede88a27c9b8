"""Cross-attention from a feature map to a sequence of embeddings: the conditioning block of
latent diffusion (Rombach et al. 2022, "High-Resolution Image Synthesis with Latent Diffusion
Models", Sec. 3.3; the ``SpatialTransformer`` of their code, with one attention layer).

Queries come from the H·W positions of the feature map, keys and values from the L tokens of
the condition ``c : real[L, E]``; the attention itself is
``torch.nn.functional.scaled_dot_product_attention`` (PyTorch's maintained fused kernel).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gendsl.nn.layers import group_norm

__all__ = ["CrossAttention", "attention_weights"]


def attention_weights(q: Tensor, k: Tensor) -> Tensor:
    """softmax(Q Kᵀ / √d) over the keys, the weights of scaled dot-product attention
    (Vaswani et al. 2017, eq. 1); ``q`` ``[..., N, d]``, ``k`` ``[..., L, d]``."""
    return torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1]), dim=-1)


class CrossAttention(nn.Module):
    """x + W_o softmax(Q Kᵀ / √d) V with Q = W_q GroupNorm(x) at each of the H·W positions and
    K = W_k LayerNorm(c), V = W_v LayerNorm(c) for the L tokens of ``c`` (Rombach et al. 2022,
    eq. 3).  The output projection starts at zero, so a new block is the identity (as in the
    LDM code's ``zero_module(proj_out)``)."""

    def __init__(self, channels: int, embed_dim: int, heads: int, groups: int):
        super().__init__()
        if channels % heads:
            raise ValueError(f"attention heads ({heads}) must divide the channels ({channels})")
        self.heads = heads
        self.norm = group_norm(channels, groups)
        self.context_norm = nn.LayerNorm(embed_dim)
        self.q = nn.Linear(channels, channels, bias=False)
        self.k = nn.Linear(embed_dim, channels, bias=False)
        self.v = nn.Linear(embed_dim, channels, bias=False)
        self.out = nn.Linear(channels, channels)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def _heads(self, h: Tensor) -> Tensor:
        b, n, c = h.shape
        return h.reshape(b, n, self.heads, c // self.heads).transpose(1, 2)

    def forward(self, x: Tensor, context: Tensor) -> Tensor:
        """``x`` ``[B, C, H, W]``, ``context`` ``[B, L, E]`` → ``[B, C, H, W]``."""
        b, c, h, w = x.shape
        tokens = self.norm(x).reshape(b, c, h * w).transpose(1, 2)  # [B, HW, C]
        ctx = self.context_norm(context)
        q, k, v = self._heads(self.q(tokens)), self._heads(self.k(ctx)), self._heads(self.v(ctx))
        a = F.scaled_dot_product_attention(q, k, v)  # [B, heads, HW, C / heads]
        a = a.transpose(1, 2).reshape(b, h * w, c)
        return x + self.out(a).transpose(1, 2).reshape(b, c, h, w)
