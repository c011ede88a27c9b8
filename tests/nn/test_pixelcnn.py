"""The PixelCNN prior over codes: causal by autograd, normalised (its probabilities over every
grid sum to one), its log-likelihood the sum of its conditionals, its sampler exact."""

from __future__ import annotations

import itertools

import torch

from gendsl.nn.pixelcnn import PixelCNN, causal_mask

torch.set_num_threads(1)


def _net(K: int = 3, seed: int = 0) -> PixelCNN:
    torch.manual_seed(seed)
    net = PixelCNN(K, channels=8, layers=2)
    with torch.no_grad():  # larger weights than the default init: sharper, varied conditionals
        for p in net.parameters():
            p.mul_(3.0)
    return net


def test_masks_a_and_b():
    a = causal_mask(3, centre=False)
    assert a.tolist() == [[1, 1, 1], [1, 0, 0], [0, 0, 0]]
    assert causal_mask(3, centre=True).tolist() == [[1, 1, 1], [1, 1, 0], [0, 0, 0]]


def test_the_output_at_each_position_depends_only_on_earlier_positions():
    net = _net()
    H, W = 4, 5
    h = torch.randn(1, 8, H, W, requires_grad=True)
    logits = net.logits_of(h)
    for i in range(H * W):
        (grad,) = torch.autograd.grad(logits[0, :, i // W, i % W].sum(), h, retain_graph=True)
        reach = grad.abs().sum(1).flatten()  # per input position, raster order
        assert bool((reach[i:] == 0).all()), f"position {i} sees a later position"
        if i % W > 0:
            assert bool(reach[i - 1] > 0)  # and it does see its left neighbour


def test_log_prob_is_the_sum_of_the_conditionals_and_normalised():
    K, grid = 2, (2, 3)
    net = _net(K)
    codes = torch.tensor(list(itertools.product(range(K), repeat=6))).reshape(-1, *grid)
    log_p = net.log_prob(codes)
    # Σ_c p(c) = 1 over all K^6 grids: the product of conditionals is a distribution.
    torch.testing.assert_close(log_p.double().exp().sum(), torch.tensor(1.0, dtype=torch.float64))
    # Chain rule, each conditional computed apart: p(c_i | c_<i) from a grid whose positions
    # from i on hold other codes (which it must not depend on).
    g = torch.Generator().manual_seed(1)
    for c in codes[::7]:
        total = torch.zeros(())
        for i in range(6):
            other = c.flatten().clone()
            other[i:] = torch.randint(0, K, (6 - i,), generator=g)
            logits = net.logits(other.reshape(1, *grid))[0, :, i // 3, i % 3]
            total = total + torch.log_softmax(logits, 0)[c.flatten()[i]]
        torch.testing.assert_close(net.log_prob(c[None])[0], total, rtol=1e-5, atol=1e-5)


def test_ancestral_samples_follow_the_model():
    K, grid = 2, (2, 2)
    net = _net(K, seed=3)
    n = 4000
    s = net.sample(n, grid, generator=torch.Generator().manual_seed(0))
    codes = torch.tensor(list(itertools.product(range(K), repeat=4))).reshape(-1, *grid)
    p = net.log_prob(codes).double().exp().detach()
    counts = torch.stack([(s == c).flatten(1).all(1).sum() for c in codes]).double()
    # Multinomial counts: each within 4.5 standard deviations of n·p (16 cells).
    sd = (n * p * (1 - p)).sqrt()
    assert bool(((counts - n * p).abs() <= 4.5 * sd + 1).all()), (counts, n * p)
    assert counts.sum() == n


def _conditional(K: int, cond_K: int, seed: int = 0) -> PixelCNN:
    torch.manual_seed(seed)
    net = PixelCNN(K, channels=8, layers=2, cond_K=cond_K)
    with torch.no_grad():
        for p in net.parameters():
            p.mul_(3.0)
    return net


def test_a_conditional_pixelcnn_is_normalised_and_causal_for_every_condition():
    K, grid = 2, (2, 2)
    net = _conditional(K, cond_K=3)
    codes = torch.tensor(list(itertools.product(range(K), repeat=4))).reshape(-1, *grid)
    conds = [torch.tensor([[0]]), torch.tensor([[2]]), torch.tensor([[1, 2], [0, 1]])]
    dists = []
    for cond in conds:  # a 1x1 and a 2x2 conditioning grid, resized to the 2x2 grid
        log_p = net.log_prob(codes, cond.expand(len(codes), *cond.shape))
        torch.testing.assert_close(
            log_p.double().exp().sum(), torch.tensor(1.0, dtype=torch.float64)
        )
        dists.append(log_p.detach())
    assert not torch.allclose(dists[0], dists[1])  # the condition changes the distribution
    # p(c_i | c_<i, cond) does not depend on c_i or later codes under a fixed condition
    cond = conds[2].expand(2, 2, 2)
    a, b = torch.tensor([[[1, 0], [1, 1]]]), torch.tensor([[[1, 1], [0, 0]]])
    la, lb = net.logits(a, cond[:1]), net.logits(b, cond[:1])
    torch.testing.assert_close(la[..., 0, 0], lb[..., 0, 0])
    torch.testing.assert_close(la[..., 0, 1], lb[..., 0, 1])


def test_conditional_ancestral_samples_follow_the_model():
    K, grid = 2, (2, 2)
    net = _conditional(K, cond_K=3, seed=3)
    n = 4000
    cond = torch.tensor([[2, 0], [1, 1]]).expand(n, 2, 2)
    s = net.sample(n, grid, generator=torch.Generator().manual_seed(0), cond=cond)
    codes = torch.tensor(list(itertools.product(range(K), repeat=4))).reshape(-1, *grid)
    p = net.log_prob(codes, cond[: len(codes)]).double().exp().detach()
    counts = torch.stack([(s == c).flatten(1).all(1).sum() for c in codes]).double()
    sd = (n * p * (1 - p)).sqrt()
    assert bool(((counts - n * p).abs() <= 4.5 * sd + 1).all()), (counts, n * p)
