"""Cross-attention (Rombach et al. 2022, Sec. 3.3) against softmax(Q Kᵀ / √d) V computed by
hand on fixed weights, and the UNet that uses it."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from gendsl.nn.attention import CrossAttention, attention_weights
from gendsl.nn.unet import UNet

torch.set_num_threads(1)


def _by_hand(block: CrossAttention, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """x + W_o [softmax(Q_h K_hᵀ / √d) V_h]_h with explicit loops over batch and heads."""
    b, ch, h, w = x.shape
    heads, d = block.heads, ch // block.heads
    normed = F.group_norm(x, block.norm.num_groups, block.norm.weight, block.norm.bias, 1e-5)
    ctx = F.layer_norm(c, (c.shape[-1],), block.context_norm.weight, block.context_norm.bias)
    out = torch.empty(b, h * w, ch, dtype=x.dtype)
    for i in range(b):
        tokens = normed[i].reshape(ch, h * w).T  # [HW, C]
        q, k, v = tokens @ block.q.weight.T, ctx[i] @ block.k.weight.T, ctx[i] @ block.v.weight.T
        for j in range(heads):
            s = slice(j * d, (j + 1) * d)
            scores = q[:, s] @ k[:, s].T / math.sqrt(d)
            weights = torch.exp(scores - scores.max(dim=1, keepdim=True).values)
            weights = weights / weights.sum(dim=1, keepdim=True)
            out[i, :, s] = weights @ v[:, s]
    y = out @ block.out.weight.T + block.out.bias
    return x + y.transpose(1, 2).reshape(b, ch, h, w)


@pytest.mark.parametrize("heads", [1, 2])
def test_cross_attention_equals_softmax_qk_v_by_hand(heads):
    torch.manual_seed(0)
    block = CrossAttention(channels=4, embed_dim=6, heads=heads, groups=2).double()
    for p in block.parameters():  # fixed, non-trivial weights (the output starts at zero)
        torch.nn.init.normal_(p, std=0.5)
    x, c = torch.randn(3, 4, 5, 5, dtype=torch.double), torch.randn(3, 7, 6, dtype=torch.double)
    torch.testing.assert_close(block(x, c), _by_hand(block, x, c), rtol=1e-10, atol=1e-10)


def test_attention_weights_are_a_softmax_over_the_keys():
    q, k = torch.randn(2, 5, 3), torch.randn(2, 4, 3)
    a = attention_weights(q, k)
    torch.testing.assert_close(a.sum(-1), torch.ones(2, 5))
    torch.testing.assert_close(
        a[1, 2, 3],
        torch.exp(q[1, 2] @ k[1, 3] / math.sqrt(3))
        / torch.exp(q[1, 2] @ k[1].T / math.sqrt(3)).sum(),
    )


def test_a_new_cross_attention_block_is_the_identity():
    block = CrossAttention(channels=4, embed_dim=6, heads=1, groups=2)
    x = torch.randn(2, 4, 3, 3)
    torch.testing.assert_close(block(x, torch.randn(2, 5, 6)), x)


def _unet(**options) -> UNet:
    return UNet(
        channels=[8, 16],
        in_shapes=[(1, 8, 8), (3, 5)],
        out_shape=(1, 8, 8),
        time="concat",
        **options,
    )


def test_unet_output_depends_on_the_sequence_through_cross_attention():
    torch.manual_seed(0)
    net = _unet(cross_attention=[4])
    for m in net.modules():
        if isinstance(m, CrossAttention):
            torch.nn.init.normal_(m.out.weight)
    assert sum(isinstance(m, CrossAttention) for m in net.modules()) == 4  # 1 down, 2 up, mid
    x, t = torch.randn(2, 1, 8, 8), torch.rand(2)
    c = torch.randn(2, 3, 5)
    assert net(x, c, t=t).shape == (2, 1, 8, 8)
    assert not torch.allclose(net(x, c, t=t), net(x, c.flip(0), t=t))
    # the order of the tokens does not matter to attention without positions
    torch.testing.assert_close(net(x, c, t=t), net(x, c.flip(1), t=t), rtol=1e-5, atol=1e-5)


def test_unet_cross_attention_needs_one_sequence_and_a_level_height():
    with pytest.raises(ValueError, match=r"cross_attention at resolution \[3\]"):
        _unet(cross_attention=[3])
    with pytest.raises(ValueError, match="exactly one sequence input"):
        UNet(channels=[8], cross_attention=[8], in_shapes=[(1, 8, 8)], out_shape=(1, 8, 8))
