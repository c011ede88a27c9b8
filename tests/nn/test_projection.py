"""The projection discriminator's head (Miyato & Koyama 2018): D(x, y) = ψ(φ(x)) + embed(y)ᵀ φ(x),
checked on hand-set weights against the formula written out."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from gendsl.nn import build_network

torch.set_num_threads(1)


def _critic(**options):
    return build_network(
        "MLP",
        {"hidden": [3], "projection": True, **options},
        in_shapes=[(2,)],
        out_shape=(),
        cond_classes=4,
    )


def test_the_output_is_psi_of_phi_plus_the_label_embedding_dotted_with_phi():
    net = _critic()
    w1 = torch.tensor([[1.0, -2.0], [0.5, 0.25], [-1.0, 3.0]])
    b1 = torch.tensor([0.1, -0.2, 0.3])
    w_psi, b_psi = torch.tensor([[2.0, -1.0, 0.5]]), torch.tensor([0.7])
    table = torch.arange(12, dtype=torch.float32).reshape(4, 3) / 10 - 0.5
    with torch.no_grad():
        (linear,) = [m for m in net.body if isinstance(m, torch.nn.Linear)]
        linear.weight.copy_(w1)
        linear.bias.copy_(b1)
        net.head.psi.weight.copy_(w_psi)
        net.head.psi.bias.copy_(b_psi)
        net.head.embed.weight.copy_(table)
    x = torch.tensor([[0.3, -0.4], [1.0, 2.0], [-0.5, 0.5]])
    y = torch.tensor([0, 3, 2])
    out = net(x, y=y)
    phi = F.silu(x @ w1.T + b1)  # the default activation, after the last hidden layer too
    expected = phi @ w_psi[0] + b_psi + (table[y] * phi).sum(1)
    assert out.shape == (3,)
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-6)


def test_the_label_is_projected_not_concatenated():
    net = _critic()
    (linear,) = [m for m in net.body if isinstance(m, torch.nn.Linear)]
    assert linear.in_features == 2  # x only: no label embedding in the input
    assert net.label_embed is None and net.head.embed.num_embeddings == 4  # no null class


@pytest.mark.parametrize(
    ("shapes", "message"),
    [
        ({"cond_classes": None}, "projection = true needs a label input"),
        ({"out_shape": (2,)}, "projection = true needs a scalar output"),
        ({"hidden": []}, "projection = true needs at least one hidden layer"),
    ],
)
def test_a_projection_head_needs_a_label_a_scalar_and_a_hidden_layer(shapes, message):
    kwargs = {"in_shapes": [(2,)], "out_shape": (), "cond_classes": 4}
    options = {"projection": True, "hidden": shapes.pop("hidden", [3])}
    kwargs.update(shapes)
    with pytest.raises(ValueError, match=message):
        build_network("MLP", options, **kwargs)


def test_labels_out_of_range_are_refused():
    with pytest.raises(ValueError, match=r"labels must lie in 0..3, got values in 0..4"):
        _critic()(torch.zeros(2, 2), y=torch.tensor([0, 4]))
