"""FiLM conditioning of the MLP (Perez et al. 2018): every hidden layer (1 + γ(c)) ⊙ h + β(c),
checked against the same layers applied by hand."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from gendsl.nn.mlp import MLP

torch.set_num_threads(1)


def test_film_mlp_equals_the_modulated_layers_by_hand():
    torch.manual_seed(0)
    net = MLP(hidden=[5, 4], film=True, in_shapes=[(3,), (2,)], out_shape=(2,)).double()
    for p in net.modulation.parameters():  # non-zero modulation (it starts at zero)
        torch.nn.init.normal_(p)
    x, c = torch.randn(6, 3, dtype=torch.double), torch.randn(6, 2, dtype=torch.double)
    lin = [m for m in net.body if isinstance(m, torch.nn.Linear)]
    h = x
    for k in range(2):
        h = lin[k](h)
        gb = c @ net.modulation[k].weight.T + net.modulation[k].bias
        gamma, beta = gb[:, : h.shape[1]], gb[:, h.shape[1] :]
        h = F.silu((1 + gamma) * h + beta)
    torch.testing.assert_close(net(x, c), lin[2](h), rtol=1e-12, atol=1e-12)


def test_a_new_film_mlp_ignores_the_condition_and_concat_does_not():
    torch.manual_seed(0)
    x, c = torch.randn(4, 3), torch.randn(4, 2)
    filmed = MLP(hidden=[8], film=True, in_shapes=[(3,), (2,)], out_shape=(2,))
    torch.testing.assert_close(filmed(x, c), filmed(x, c.flip(0)))
    concat = MLP(hidden=[8], in_shapes=[(3,), (2,)], out_shape=(2,))
    assert not torch.allclose(concat(x, c), concat(x, c.flip(0)))


def test_film_needs_a_condition():
    with pytest.raises(ValueError, match="film = true needs a first input"):
        MLP(hidden=[8], film=True, in_shapes=[(3,)], out_shape=(2,))
