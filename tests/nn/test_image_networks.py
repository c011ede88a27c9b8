"""Image networks at 28-32 px: the DDPM UNet's size, padding, attention and memory format; the
ConvNet's reshaped outputs, zero-initialised head and spectrally normalised convolutions."""

from __future__ import annotations

import pytest
import torch

from gendsl.nn import build_network, count_parameters
from gendsl.nn.unet import SelfAttention, padding_for

torch.set_num_threads(1)


def test_the_ddpm_cifar_configuration_is_one_line_of_35_7m_parameters():
    net = build_network(
        "UNet",
        {
            "channels": [128, 256, 256, 256],
            "blocks": 2,
            "attention": [16],
            "dropout": 0.1,
            "groups": 32,
            "time": ("sinusoidal", 128),
        },
        in_shapes=[(3, 32, 32)],
        out_shape=(3, 32, 32),
    )
    # Ho et al. 2020, app. B: "Our CIFAR10 model has 35.7 million parameters".
    assert 35.65e6 <= count_parameters(net) <= 35.75e6
    attention = [m for m in net.modules() if isinstance(m, SelfAttention)]
    # 16x16 is level 1: two down blocks and three up blocks; plus the middle one.
    assert len(attention) == 2 + 3 + 1


@pytest.mark.parametrize(
    ("size", "multiple", "pad"), [(28, 8, (2, 2)), (28, 4, (0, 0)), (7, 4, (0, 1))]
)
def test_padding_makes_the_size_a_multiple(size, multiple, pad):
    assert padding_for(size, multiple) == pad
    assert (size + sum(pad)) % multiple == 0


def test_a_28px_unet_with_four_levels_pads_to_32_and_crops_back():
    torch.manual_seed(0)
    net = build_network(
        "UNet", {"channels": [4, 8, 8, 8]}, in_shapes=[(1, 28, 28)], out_shape=(1, 28, 28)
    )
    sizes = []
    hook = net.mid1.register_forward_hook(lambda m, i, o: sizes.append(tuple(o.shape[2:])))
    x = torch.randn(2, 1, 28, 28, requires_grad=True)
    out = net(x)
    hook.remove()
    assert out.shape == (2, 1, 28, 28) and sizes == [(4, 4)]
    # The output's centre pixel sees the input's corner pixel: nothing is cut off on entry.
    out[:, 0, 14, 14].sum().backward()
    assert x.grad[:, 0, 0, 0].abs().sum() > 0


def test_attention_mixes_positions_and_is_invariant_to_their_order():
    torch.manual_seed(0)
    att = SelfAttention(8, heads=2, groups=4)
    x = torch.randn(3, 8, 4, 4)
    y = att(x)
    perm = torch.randperm(16)
    xp = x.flatten(2)[:, :, perm].reshape_as(x)
    # Self-attention without positional input commutes with permuting the positions.
    torch.testing.assert_close(att(xp).flatten(2), y.flatten(2)[:, :, perm], atol=1e-5, rtol=1e-5)
    # An independent computation of the same formula.
    b, c = 3, 8
    q, k, v = att.qkv(att.norm(x)).reshape(b, 3, 2, c // 2, 16).unbind(1)
    w = torch.softmax(torch.einsum("bhdi,bhdj->bhij", q, k) / (c // 2) ** 0.5, dim=-1)
    a = torch.einsum("bhij,bhdj->bhdi", w, v).reshape(b, c, 4, 4)
    torch.testing.assert_close(y, x + att.out(a), atol=1e-5, rtol=1e-5)


def test_unet_runs_in_channels_last_with_the_same_result():
    torch.manual_seed(0)
    net = build_network(
        "UNet",
        {"channels": [8, 16], "attention": [7]},
        in_shapes=[(1, 14, 14)],
        out_shape=(1, 14, 14),
        time="fourier",
        cond_classes=10,
    ).double()
    net.eval()
    x, t, y = torch.randn(3, 1, 14, 14).double(), torch.rand(3).double(), torch.tensor([0, 5, 10])
    ref = net(x, t=t, y=y)
    net = net.to(memory_format=torch.channels_last)
    out = net(x.to(memory_format=torch.channels_last), t=t, y=y)
    torch.testing.assert_close(out, ref, rtol=1e-10, atol=1e-10)


def test_class_and_vector_conditioning_change_the_output():
    torch.manual_seed(0)
    net = build_network(
        "UNet",
        {"channels": [8, 8]},
        in_shapes=[(1, 8, 8), (3,)],
        out_shape=(1, 8, 8),
        time="sinusoidal",
        cond_classes=4,
    )
    x, v, t = torch.randn(2, 1, 8, 8), torch.randn(2, 3), torch.rand(2)
    base = net(x, v, t=t, y=torch.tensor([0, 0]))
    assert not torch.allclose(base, net(x, v, t=t, y=torch.tensor([1, 1])))
    assert not torch.allclose(base, net(x, v + 1, t=t, y=torch.tensor([0, 0])))


def test_dropout_is_active_in_training_only():
    torch.manual_seed(0)
    net = build_network(
        "UNet", {"channels": [8], "dropout": 0.5}, in_shapes=[(1, 4, 4)], out_shape=(1, 4, 4)
    )
    x = torch.randn(2, 1, 4, 4)
    net.train()
    assert not torch.equal(net(x), net(x))
    net.eval()
    assert torch.equal(net(x), net(x))


def test_zero_out_convnet_starts_at_zero_with_a_reshaped_output():
    net = build_network(
        "ConvNet",
        {"channels": [8], "zero_out": True},
        in_shapes=[(4, 7, 7)],
        out_shape=(2, 4, 7, 7),
    )
    out = net(torch.randn(3, 4, 7, 7))
    assert out.shape == (3, 2, 4, 7, 7) and torch.count_nonzero(out) == 0


def _operator_norm(layer: torch.nn.Module, shape: tuple[int, ...], iters: int = 200) -> float:
    """The largest singular value of the linear map x -> layer(x) - layer(0), by power
    iteration through autograd (an independent estimate of the Lipschitz constant)."""
    zero = torch.zeros(1, *shape)
    x = torch.randn(1, *shape)
    for _ in range(iters):
        x = (x / x.norm()).requires_grad_(True)
        y = layer(x) - layer(zero)
        (g,) = torch.autograd.grad(y, x, y)  # Aᵀ A x
        x = g.detach()
    with torch.no_grad():
        x = x / x.norm()
        return float((layer(x) - layer(zero)).norm())


def test_spectral_norm_bounds_each_conv_layers_lipschitz_constant():
    torch.manual_seed(0)
    net = build_network(
        "ConvNet",
        {"channels": [8, 8], "spectral_norm": True, "activation": "leaky_relu"},
        in_shapes=[(1, 8, 8)],
        out_shape=(1,),
    )
    with torch.no_grad():
        for conv in net.convs:
            conv.parametrizations.weight.original.mul_(10.0)
    x = torch.randn(4, 1, 8, 8)
    for _ in range(50):  # one power iteration per training-mode forward pass
        net(x)
    net.eval()
    shapes = [(1, 8, 8), (8, 4, 4)]
    with torch.no_grad():
        raw = [
            torch.linalg.svdvals(c.parametrizations.weight.original.flatten(1))[0]
            for c in net.convs
        ]
    for conv, shape, r in zip(net.convs, shapes, raw, strict=True):
        sigma = float(torch.linalg.svdvals(conv.weight.detach().flatten(1))[0])
        assert abs(sigma - 1.0) < 1e-3 and r > 2.0
        # A k x k convolution applies W (C_out x C_in k²) to k² shifted copies of the input,
        # whose norm is at most k |x| (zero padding): Lip <= k σ(W) = k.
        lip = _operator_norm(conv, shape)
        assert 0.5 < lip <= 3 * sigma * (1 + 1e-4)
