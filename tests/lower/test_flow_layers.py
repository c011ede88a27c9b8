"""One contract for every flow layer kind: shapes, inverse(forward(x)) = x, log|det J| against
the autograd Jacobian, gradients reach every parameter, and a state_dict round trip."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

from gendsl.lower.cnf import CNF
from gendsl.lower.flow_layers import (
    ActNorm,
    AdditiveCoupling,
    AffineCoupling,
    BatchNorm,
    Flow,
    InvConv,
    Permute,
    Reverse,
    Split,
    Squeeze,
    Transform,
    coupling_mask,
)
from gendsl.lower.flow_priors import LearnedTop, SplitPrior
from gendsl.nn import build_network


@pytest.fixture(autouse=True)
def _float64():
    """Jacobians are compared in double precision; the default dtype is restored after."""
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(old)


def _mlp(shape, out_shape, *, time=None, hidden=(16,), activation="tanh"):
    return build_network(
        "MLP",
        {"hidden": list(hidden), "activation": activation},
        in_shapes=[shape],
        out_shape=out_shape,
        time=time,
    )


def _actnorm(shape):
    t = ActNorm(shape)
    t.initialize(torch.randn(32, *shape) * 2 + 1)
    return t


def _batchnorm(shape):
    t = BatchNorm(shape, momentum=0.5)
    t.train()
    t.call_and_ladj(torch.randn(32, *shape) * 3 + 1)
    return t


def _split(shape, learned: bool = False):
    inner_shape = (shape[0] - shape[0] // 2, *shape[1:])
    inner = Flow(
        inner_shape,
        [AffineCoupling(inner_shape, _mlp(inner_shape, (2, *inner_shape)), "alternate")],
    )
    return Split(shape, inner, SplitPrior(inner_shape[0], shape[0] // 2) if learned else None)


def _cnf(shape):
    net = _mlp(shape, shape, time="concat", hidden=(8,))
    return CNF(shape, net, trace="exact", solver="dopri5", rtol=1e-9, atol=1e-9)


def _glow_step(shape):
    return Flow(
        shape,
        [
            _actnorm(shape),
            InvConv(shape, True),
            AffineCoupling(shape, _mlp(shape, (2, *shape)), "half"),
        ],
    )


CASES: dict[str, tuple[Callable[[tuple[int, ...]], Transform], tuple[int, ...]]] = {
    "affine_alternate": (lambda s: AffineCoupling(s, _mlp(s, (2, *s)), "alternate"), (5,)),
    "affine_half": (lambda s: AffineCoupling(s, _mlp(s, (2, *s)), "half"), (4,)),
    "affine_image": (lambda s: AffineCoupling(s, _mlp(s, (2, *s)), "alternate"), (2, 2, 2)),
    "additive": (lambda s: AdditiveCoupling(s, _mlp(s, s), "alternate"), (4,)),
    "actnorm": (_actnorm, (3,)),
    "actnorm_image": (_actnorm, (2, 2, 3)),
    "reverse": (Reverse, (4,)),
    "permute": (lambda s: Permute(s, 3), (5,)),
    "invconv_lu": (lambda s: InvConv(s, True), (4,)),
    "invconv_full": (lambda s: InvConv(s, False), (3,)),
    "invconv_image": (lambda s: InvConv(s, True), (3, 2, 2)),
    "batchnorm": (_batchnorm, (3,)),
    "squeeze": (Squeeze, (1, 4, 2)),
    "split": (_split, (4, 1, 2)),
    "split_learned_prior": (lambda s: _split(s, learned=True), (3, 2, 3)),
    "learntop": (LearnedTop, (2, 2, 3)),
    "glow_step": (_glow_step, (4,)),
    "cnf": (_cnf, (2,)),
}


def _make(name: str, seed: int) -> tuple[Transform, tuple[int, ...]]:
    build, shape = CASES[name]
    torch.manual_seed(seed)
    t = build(shape).double()
    with torch.no_grad():  # move every parameter off its (often trivial) initial value
        for p in t.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return t.eval(), shape


@pytest.mark.parametrize("name", sorted(CASES))
def test_layer_contract(name):
    t, shape = _make(name, 0)
    x = torch.randn(3, *shape)
    y, ladj = t.call_and_ladj(x)
    out = t.out_shape(shape)
    assert y.shape == (3, *out) and ladj.shape == (3,)
    assert y.numel() == x.numel()
    torch.testing.assert_close(t.forward(x), y)
    torch.testing.assert_close(t.inverse(y), x, atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(t.log_abs_det_jacobian(x, y), ladj)
    for b in range(3):
        jac = torch.autograd.functional.jacobian(lambda v: t(v[None]).reshape(-1), x[b])
        n = x[b].numel()
        expected = torch.linalg.slogdet(jac.reshape(n, n))[1]
        torch.testing.assert_close(ladj[b], expected, atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("name", sorted(CASES))
def test_every_parameter_gets_a_gradient(name):
    t, shape = _make(name, 1)
    t.train()
    x = torch.randn(8, *shape, requires_grad=True)
    y, ladj = t.call_and_ladj(x)
    (0.5 * (y**2).sum() - ladj.sum()).backward()
    assert x.grad.abs().sum() > 0
    for pname, p in t.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, pname


@pytest.mark.parametrize("name", sorted(CASES))
def test_state_dict_round_trip(name):
    t, shape = _make(name, 2)
    fresh, _ = _make(name, 3)
    x = torch.randn(4, *shape)
    assert not torch.allclose(fresh(x), t(x)) or not list(t.parameters())
    fresh.load_state_dict(t.state_dict())
    torch.testing.assert_close(fresh.eval()(x), t(x))


def test_actnorm_initialises_from_the_first_training_batch():
    t = ActNorm((2, 3, 3))
    x = torch.randn(16, 2, 3, 3) * torch.tensor([3.0, 0.5]).reshape(2, 1, 1) + 4
    y = t.train()(x)
    torch.testing.assert_close(y.mean((0, 2, 3)), torch.zeros(2), atol=1e-9, rtol=0)
    torch.testing.assert_close(y.std((0, 2, 3), unbiased=False), torch.ones(2))
    assert bool(t.initialized)
    before = t.log_s.detach().clone()
    t(x * 5)
    torch.testing.assert_close(t.log_s.detach(), before)  # initialised once only


def test_invconv_lu_log_det_is_the_sum_of_log_s():
    torch.manual_seed(0)
    t = InvConv((5,), True)
    with torch.no_grad():
        t.log_s.add_(0.5)
        t.lower.add_(torch.randn(5, 5))
    torch.testing.assert_close(t.log_abs_det_w(), torch.linalg.slogdet(t.weight_matrix())[1])


def test_batchnorm_training_uses_batch_statistics_and_updates_running_ones():
    t = BatchNorm((2,), momentum=0.25).train()
    x = torch.randn(64, 2) * torch.tensor([2.0, 0.5]) + torch.tensor([1.0, -1.0])
    y, ladj = t.call_and_ladj(x)
    torch.testing.assert_close(y.mean(0), torch.zeros(2), atol=1e-9, rtol=0)
    var = x.var(0, unbiased=False)
    torch.testing.assert_close(ladj, (-0.5 * torch.log(var + t.eps)).sum().expand(64))
    torch.testing.assert_close(t.running_mean, 0.25 * x.mean(0))
    torch.testing.assert_close(t.running_var, 0.75 + 0.25 * var)


def test_coupling_masks():
    assert coupling_mask((5,), "alternate").tolist() == [1, 0, 1, 0, 1]
    assert coupling_mask((5,), "half").tolist() == [1, 1, 0, 0, 0]
    board = coupling_mask((2, 2, 2), "alternate")
    assert board[1].tolist() == [[1, 0], [0, 1]] and board.shape == (2, 2, 2)
    assert coupling_mask((4, 1, 1), "half").flatten().tolist() == [1, 1, 0, 0]


def test_squeeze_moves_each_2x2_block_into_channels():
    x = torch.arange(16.0).reshape(1, 1, 4, 4)
    y = Squeeze((1, 4, 4))(x)
    assert y.shape == (1, 4, 2, 2)
    # channel (i, j) holds the pixels at (2h + i, 2w + j)
    for i in range(2):
        for j in range(2):
            torch.testing.assert_close(y[0, 2 * i + j], x[0, 0, i::2, j::2])
