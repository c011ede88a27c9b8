"""Contract tests for the shape-inferred networks: shapes, gradients, per-sample independence,
determinism, spectral norm, zero-initialised control branches and error messages."""

from __future__ import annotations

import pytest
import torch

from gendsl.nn import build_network, copy_for_control, count_parameters, zero_module

torch.set_num_threads(1)

# (kind, kwargs, in_shapes, out_shape, time, cond_classes)
CASES = [
    ("MLP", {"hidden": [16, 16]}, [(3,)], (2,), None, None),
    ("MLP", {"hidden": [16], "activation": "tanh"}, [(3,), (2, 2)], (2, 5), "concat", None),
    ("MLP", {"hidden": [16], "time": ("fourier", 8)}, [(2,)], (2,), None, 4),
    (
        "MLP",
        {"hidden": [8], "activation": "leaky_relu", "spectral_norm": True},
        [(4,)],
        (1,),
        None,
        None,
    ),
    ("MLP", {"hidden": [8], "activation": "gelu"}, [], (3,), "sinusoidal", None),
    ("MLP", {"hidden": [], "activation": "elu"}, [(1, 4, 4)], (4,), None, 3),
    ("ResNet", {"hidden": 16, "blocks": 2}, [(2,)], (2,), "fourier", None),
    ("ResNet", {"hidden": 8, "blocks": 1, "activation": "relu"}, [(2,), (3,)], (4,), None, 5),
    ("ConvNet", {"channels": [4, 8]}, [(1, 8, 8)], (6,), None, None),
    ("ConvNet", {"channels": [4, 8]}, [(1, 8, 8)], (3, 2, 2), "concat", 10),
    (
        "ConvNet",
        {"channels": [4], "kernel": 5, "spectral_norm": True},
        [(2, 8, 8), (1, 8, 8)],
        (1,),
        None,
        None,
    ),
    ("ConvNet", {"channels": [8, 4], "transpose": True}, [(3, 2, 2)], (1, 8, 8), None, None),
    ("ConvNet", {"channels": [8, 4], "transpose": True}, [(6,)], (1, 8, 8), "fourier", None),
    ("ConvNet", {"channels": [4, 4], "transpose": True}, [(2, 4, 4), (3,)], (1, 8, 8), None, 2),
    ("UNet", {"channels": [8, 16]}, [(1, 8, 8)], (1, 8, 8), "sinusoidal", None),
    (
        "UNet",
        {"channels": [8, 16, 16], "blocks": 2},
        [(1, 8, 8), (2, 8, 8)],
        (3, 8, 8),
        "fourier",
        10,
    ),
    ("UNet", {"channels": [8]}, [(1, 4, 4), (5,)], (1, 4, 4), None, None),
    (
        "UNet",
        {"channels": [8, 8, 16], "attention": [4], "heads": 2, "dropout": 0.1, "groups": 4},
        [(1, 14, 14)],
        (1, 14, 14),
        "sinusoidal",
        3,
    ),
    ("UNet", {"channels": [4, 8, 8], "attention": [3]}, [(2, 10, 12)], (2, 10, 12), None, 2),
    ("ConvNet", {"channels": [8, 4], "norm": "batch"}, [(1, 12, 12)], (2, 1, 12, 12), None, None),
    (
        "ConvNet",
        {"channels": [8, 4], "transpose": True, "norm": "group"},
        [(5,)],
        (2, 1, 28, 28),
        None,
        None,
    ),
    (
        "ConvNet",
        {"channels": [4, 8, 8], "activation": "leaky_relu"},
        [(1, 28, 28)],
        (3,),
        None,
        10,
    ),
    ("Embedding", {}, [()], (2, 3), None, 7),
    ("Embedding", {"classes": 4}, [()], (5,), None, None),
    ("fourier", {}, [()], (8,), None, None),
    ("sinusoidal", {"dim": 6}, [()], (6,), None, None),
]


def _inputs(case, batch=5, seed=0):
    kind, kwargs, in_shapes, _, time, cond_classes = case
    g = torch.Generator().manual_seed(seed)
    if kind == "Embedding":
        k = cond_classes if cond_classes is not None else 4
        return [torch.randint(0, k + 1, (batch,), generator=g)], {}
    if kind in ("fourier", "sinusoidal"):
        return [torch.rand(batch, generator=g)], {}
    xs = [torch.randn(batch, *s, generator=g) for s in in_shapes]
    kw = {}
    if time is not None or "time" in kwargs:
        kw["t"] = torch.rand(batch, generator=g)
    if cond_classes is not None:
        kw["y"] = torch.randint(0, cond_classes + 1, (batch,), generator=g)
    return xs, kw


def _build(case, seed=0):
    kind, kwargs, in_shapes, out_shape, time, cond_classes = case
    torch.manual_seed(seed)
    return build_network(
        kind,
        kwargs,
        in_shapes=in_shapes,
        out_shape=out_shape,
        time=time,
        cond_classes=cond_classes,
    )


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c[0]}-{c[2]}-{c[3]}-{c[4]}")
def test_output_shape_and_gradients_reach_every_parameter(case):
    net = _build(case)
    xs, kw = _inputs(case, batch=16)
    out = net(*xs, **kw)
    assert out.shape == (16, *case[3])
    if count_parameters(net) == 0:  # the fixed time features
        return
    (out.square().sum() + out.sum()).backward()
    for name, p in net.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c[0]}-{c[2]}-{c[3]}-{c[4]}")
def test_samples_are_processed_independently_and_deterministically(case):
    net, twin = _build(case, seed=3), _build(case, seed=3)
    net.eval()
    twin.eval()
    xs, kw = _inputs(case, batch=6, seed=1)
    full = net(*xs, **kw)
    assert torch.equal(twin(*xs, **kw), full)
    other = _build(case, seed=4)
    if count_parameters(other) > 0 or case[0] == "fourier":
        assert not torch.equal(other.eval()(*xs, **kw), full)
    # Independence in float64: a batch of 2 and a batch of 6 may take differently blocked
    # kernels, which reassociate the sums; the float64 rounding of such a sum of n terms is at
    # most n·2.2e-16·Σ|terms| (~1e-12 for these nets), while mixing samples (batch statistics,
    # attention across the batch) changes outputs by O(1e-2).  In float32 the same bound is
    # ~1e-5 and depends on the kernels the machine picks, so float32 is not used here.
    net.double()
    xs = [x.double() if x.is_floating_point() else x for x in xs]
    kw = {k: v.double() if v.is_floating_point() else v for k, v in kw.items()}
    full = net(*xs, **kw)
    first = net(*[x[:2] for x in xs], **{k: v[:2] for k, v in kw.items()})
    torch.testing.assert_close(first, full[:2], rtol=1e-10, atol=1e-10)


def test_count_parameters_by_hand():
    net = build_network("MLP", {"hidden": [4]}, in_shapes=[(3,)], out_shape=(2,))
    assert count_parameters(net) == (3 * 4 + 4) + (4 * 2 + 2)
    net.body[0].weight.requires_grad_(False)
    assert count_parameters(net) == 26 - 12
    assert count_parameters(net, trainable_only=False) == 26


def test_concat_time_enters_as_a_plain_feature():
    net = build_network("MLP", {"hidden": []}, in_shapes=[(2,)], out_shape=(1,), time="concat")
    x, t = torch.randn(7, 2), torch.rand(7)
    lin = net.body[0]
    expected = torch.cat([x, t[:, None]], 1) @ lin.weight.T + lin.bias
    torch.testing.assert_close(net(x, t=t), expected)
    torch.testing.assert_close(net(x, t=0.25), net(x, t=torch.full((7,), 0.25)))


def test_null_label_is_the_extra_class():
    net = build_network("MLP", {"hidden": [8]}, in_shapes=[(2,)], out_shape=(2,), cond_classes=3)
    x = torch.randn(4, 2)
    torch.testing.assert_close(net(x), net(x, y=torch.full((4,), 3)))
    assert not torch.allclose(net(x), net(x, y=torch.zeros(4, dtype=torch.long)))


def test_spectral_norm_bounds_top_singular_value():
    torch.manual_seed(0)
    net = build_network(
        "MLP", {"hidden": [32, 32], "spectral_norm": True}, in_shapes=[(8,)], out_shape=(4,)
    )
    linears = [m for m in net.modules() if isinstance(m, torch.nn.Linear)]
    with torch.no_grad():
        for m in linears:
            m.parametrizations.weight.original.mul_(10.0)
    x = torch.randn(3, 8)
    for _ in range(100):  # one power iteration per training-mode forward pass
        net(x)
    net.eval()
    for m in linears:
        sigma = torch.linalg.svdvals(m.weight.detach())[0]
        assert abs(float(sigma) - 1.0) < 1e-3
        raw = torch.linalg.svdvals(m.parametrizations.weight.original.detach())[0]
        assert raw > 2.0


def test_zero_module_and_control_branch_start_at_zero_then_learn():
    torch.manual_seed(0)
    base = build_network(
        "UNet", {"channels": [8, 8]}, in_shapes=[(1, 8, 8)], out_shape=(1, 8, 8), time="fourier"
    )
    lin = zero_module(torch.nn.Linear(3, 3))
    assert all(torch.count_nonzero(p) == 0 for p in lin.parameters())
    branch = copy_for_control(base, (2, 8, 8))
    x, c, t = torch.randn(4, 1, 8, 8), torch.randn(4, 2, 8, 8), torch.rand(4)
    assert torch.count_nonzero(branch(x, control=c, t=t)) == 0
    for (n1, p1), (n2, p2) in zip(
        base.named_parameters(), branch.copy.named_parameters(), strict=True
    ):
        assert n1 == n2 and torch.equal(p1, p2) and p1 is not p2
    opt = torch.optim.SGD(branch.parameters(), lr=0.1)
    for _ in range(2):  # step 1 moves zero_out, step 2 lets gradient reach zero_in
        opt.zero_grad()
        (branch(x, control=c, t=t) - 1.0).square().mean().backward()
        opt.step()
    assert torch.count_nonzero(branch(x, control=c, t=t)) > 0
    assert torch.count_nonzero(branch.zero_in.weight) > 0
    vec = copy_for_control(build_network("MLP", {}, in_shapes=[(2,)], out_shape=(2,)), (5,))
    assert vec(torch.randn(3, 2), control=torch.randn(3, 5)).shape == (3, 2)


@pytest.mark.parametrize(
    ("kind", "kwargs", "in_shapes", "out_shape", "quoted"),
    [
        ("Transformer", {}, [(2,)], (2,), "'Transformer'"),
        ("MLP", {"widths": [3]}, [(2,)], (2,), "widths"),
        ("MLP", {"hidden": [3, -1]}, [(2,)], (2,), "[3, -1]"),
        ("MLP", {"activation": "swish"}, [(2,)], (2,), "'swish'"),
        ("MLP", {"time": "wavelet"}, [(2,)], (2,), "'wavelet'"),
        ("MLP", {"time": ("fourier", 7)}, [(2,)], (2,), "7"),
        ("ConvNet", {"kernel": 4}, [(1, 8, 8)], (2,), "4"),
        ("ConvNet", {}, [(3,)], (2,), "[(3,)]"),
        ("ConvNet", {"transpose": True}, [(3,)], (5,), "(5,)"),
        ("ConvNet", {"channels": [4]}, [(1, 8, 8)], (2, 2, 2), "(2, 2)"),
        ("ConvNet", {}, [(1, 4, 4)], (1, 8, 8), "transpose"),
        ("UNet", {"channels": [8, 8], "attention": [8]}, [(1, 28, 28)], (1, 28, 28), "[28, 14]"),
        ("UNet", {"channels": [8], "dropout": 1.0}, [(1, 4, 4)], (1, 4, 4), "1.0"),
        ("UNet", {"channels": [6], "heads": 4, "attention": [4]}, [(1, 4, 4)], (1, 4, 4), "(6)"),
        ("ConvNet", {"norm": "layer"}, [(1, 8, 8)], (2,), "'layer'"),
        ("UNet", {}, [(1, 8, 8)], (1, 4, 4), "(1, 4, 4)"),
        ("Embedding", {}, [()], (3,), "None"),
        ("ResNet", {"blocks": 0}, [(2,)], (2,), "[0]"),
    ],
)
def test_impossible_networks_raise_value_error_quoting_the_value(
    kind, kwargs, in_shapes, out_shape, quoted
):
    with pytest.raises(ValueError) as info:
        build_network(kind, kwargs, in_shapes=in_shapes, out_shape=out_shape)
    assert quoted in str(info.value)


def test_forward_rejects_wrong_inputs():
    net = build_network("MLP", {}, in_shapes=[(2,)], out_shape=(2,), time="fourier")
    with pytest.raises(ValueError, match=r"\(3,\)"):
        net(torch.randn(4, 3), t=torch.rand(4))
    with pytest.raises(ValueError, match="time"):
        net(torch.randn(4, 2))
    with pytest.raises(ValueError, match="no class label"):
        net(torch.randn(4, 2), t=torch.rand(4), y=torch.zeros(4))
