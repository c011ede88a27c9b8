"""A ConvNet's declared stride-2 stages: ``down = k`` halves (an odd size padded up), ``up = k``
doubles (2n − 1 where the encoder padded), so a decoder maps an encoder's grid back to the
image size exactly; the size formulas agree with what torch's convolutions produce."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from gendsl.nn import build_network
from gendsl.strides import halved, halvings, size_chain, transposed_padding

torch.set_num_threads(1)


def _stage_sizes(net, x: torch.Tensor) -> list[tuple[int, int]]:
    sizes = []
    hooks = [
        c.register_forward_hook(lambda m, i, o: sizes.append(tuple(o.shape[2:])))
        for c in net.convs
    ]
    out = net(x)
    for h in hooks:
        h.remove()
    return [tuple(x.shape[2:]), *sizes, tuple(out.shape[-2:])]


@pytest.mark.parametrize("kernel", [1, 3, 5])
def test_halved_is_the_size_of_a_stride_2_same_padded_convolution(kernel):
    conv = nn.Conv2d(1, 1, kernel, stride=2, padding=kernel // 2)
    for n in range(1, 34):
        x = torch.zeros(1, 1, n, n + 1)
        out = x
        for k in range(1, 4):
            out = conv(out)
            assert tuple(out.shape[2:]) == halved((n, n + 1), k)


def test_transposed_padding_gives_2n_or_2n_minus_1():
    for n in range(1, 20):
        for target in (2 * n, 2 * n - 1):
            p, q = transposed_padding(n, target)
            up = nn.ConvTranspose2d(1, 1, 4, stride=2, padding=p, output_padding=q)
            assert up(torch.zeros(1, 1, n, n)).shape[2:] == (target, target)
    with pytest.raises(ValueError, match="maps 7 pixels to 2n or 2n - 1, not 12"):
        transposed_padding(7, 12)


def test_halvings_and_chain():
    assert size_chain((28, 28), 3) == [(28, 28), (14, 14), (7, 7), (4, 4)]
    assert halvings((28, 28), (4, 4), 3) == 3
    assert halvings((28, 28), (4, 4), 2) is None
    assert halvings((32, 32), (8, 8), 4) == 2  # exact division: the fewest stages


@pytest.mark.parametrize(
    ("down", "chain"),
    [
        (2, [(28, 28), (14, 14), (7, 7)]),  # the VQ-VAE's 7x7 grid at 28 px
        (3, [(28, 28), (14, 14), (7, 7), (4, 4)]),  # 7 is padded to 8 and halved
    ],
)
def test_encoder_down_and_decoder_mirror_it_exactly(down, chain):
    torch.manual_seed(0)
    grid = chain[-1]
    widths = {"channels": [4] * down}
    enc = build_network(
        "ConvNet", {**widths, "down": down}, in_shapes=[(1, 28, 28)], out_shape=(3, *grid)
    )
    dec = build_network(
        "ConvNet",
        {**widths, "transpose": True, "up": down},
        in_shapes=[(3, *grid)],
        out_shape=(1, 28, 28),
    )
    x = torch.randn(2, 1, 28, 28)
    assert _stage_sizes(enc, x) == [*chain, grid]
    z = enc(x).detach().requires_grad_(True)
    assert _stage_sizes(dec, z) == [*chain[::-1], (28, 28)]
    # Every output pixel, border included, depends on the code grid: the odd stage's output
    # padding is a row of real transposed-convolution outputs, not a constant.
    jac = torch.autograd.functional.jacobian(lambda c: dec(c)[0, 0], z[:1])
    assert jac.shape[:2] == (28, 28) and bool((jac.abs().flatten(2).sum(-1) > 0).all())


def test_an_undeclared_decoder_infers_the_padded_stages():
    dec = build_network(
        "ConvNet",
        {"channels": [4, 4, 4], "transpose": True},
        in_shapes=[(2, 4, 4)],
        out_shape=(1, 28, 28),
    )
    pads = [(c.padding, c.output_padding) for c in dec.convs]
    assert pads == [((2, 2), (1, 1)), ((1, 1), (0, 0)), ((1, 1), (0, 0))]  # 4 -> 7 -> 14 -> 28


def test_existing_decoders_keep_their_layers():
    # no option: the DCGAN stages of before, kernel 4, stride 2, padding 1
    dec = build_network(
        "ConvNet",
        {"channels": [8, 4], "transpose": True},
        in_shapes=[(3, 7, 7)],
        out_shape=(1, 28, 28),
    )
    assert [(c.kernel_size, c.stride, c.padding, c.output_padding) for c in dec.convs] == [
        ((4, 4), (2, 2), (1, 1), (0, 0))
    ] * 2


def test_vector_ends_follow_the_declared_stages():
    torch.manual_seed(0)
    enc = build_network(
        "ConvNet", {"channels": [4, 4, 4], "down": 3}, in_shapes=[(1, 28, 28)], out_shape=(5,)
    )
    assert enc.head[1].in_features == 4 * 4 * 4 and enc(torch.randn(2, 1, 28, 28)).shape == (2, 5)
    gen = build_network(
        "ConvNet",
        {"channels": [4, 4, 4], "transpose": True, "up": 3},
        in_shapes=[(6,)],
        out_shape=(1, 28, 28),
    )
    assert gen.grid == (4, 4, 4) and gen(torch.randn(2, 6)).shape == (2, 1, 28, 28)


@pytest.mark.parametrize(
    ("options", "in_shape", "out_shape", "message"),
    [
        (
            {"channels": [4, 4], "transpose": True, "down": 2},
            (3, 7, 7),
            (1, 28, 28),
            "down is for an encoder; a transposed ConvNet takes up = k",
        ),
        (
            {"channels": [4, 4], "up": 2},
            (1, 28, 28),
            (3, 7, 7),
            "up is for a transposed ConvNet; an encoder takes down = k",
        ),
        (
            {"channels": [4, 4], "down": 3},
            (1, 28, 28),
            (3, 4, 4),
            "down = 3 needs 3 stages, but channels has 2",
        ),
        (
            {"channels": [4, 4], "down": 1},
            (1, 28, 28),
            (3, 7, 7),
            r"down = 1 maps spatial size \(28, 28\) to \(14, 14\), not \(7, 7\)",
        ),
        (
            {"channels": [4, 4], "transpose": True, "up": 1},
            (3, 7, 7),
            (1, 28, 28),
            r"up = 1 maps spatial size \(14, 14\) to \(28, 28\), but the input is \(7, 7\)",
        ),
        (
            {"channels": [4], "transpose": True},
            (3, 7, 7),
            (1, 28, 28),
            r"cannot map spatial size \(7, 7\) to \(28, 28\) with at most 1 stride-2 transposed",
        ),
    ],
)
def test_stage_options_that_cannot_fit_are_refused(options, in_shape, out_shape, message):
    with pytest.raises(ValueError, match=message):
        build_network("ConvNet", options, in_shapes=[in_shape], out_shape=out_shape)
