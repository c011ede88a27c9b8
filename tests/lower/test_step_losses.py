"""The training losses of stdlib specs against the same losses written out by hand with the
compiled model's own networks and the same random draws (one seed for both): flow matching
(Lipman et al. 2023, eq. 23), RealNVP's change of variables (Dinh et al. 2017, eq. 3), the
GAN's two players (Goodfellow et al. 2014) and contrastive divergence with short-run Langevin
chains from a replay buffer (Du & Mordatch 2019)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

import gendsl.lower as L
from gendsl.lower.flow_layers import ActNorm, AffineCoupling, Reverse

# float32 sums over a batch of 64: a few units in the last place of the loss
TOL = {"rtol": 1e-6, "atol": 1e-6}


def _spec(name: str, nets: str) -> str:
    return f'import "stdlib/{name}.gen"\nmodel m extends {name} {{\n{nets}\n}}'


def _data(n: int = 64) -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    return torch.randn(n, 2, generator=g) * torch.tensor([1.0, 0.5]) + 0.3


def test_flow_matching_loss_is_the_regression_on_the_path_velocity():
    """L = mean ‖v(x_t, t) − (x1 − (1 − σ_min) x0)‖², x_t = (1 − (1 − σ_min) t) x0 + t x1,
    t ~ U[1e-4, 1 − 1e-4], x0 ~ N(0, I), no noise term (σ_min = 0.001)."""
    model = L.load(_spec("flow_matching", "  net v = MLP(hidden = [16], time = concat)"), D=2)
    x1 = _data()
    torch.manual_seed(3)
    compiled = model.loss(x1)
    torch.manual_seed(3)
    x0 = torch.randn_like(x1)
    t = 1e-4 + (1 - 2e-4) * torch.rand(x1.shape[0])
    a = 1 - 0.999 * t[:, None]
    x_t = a * x0 + t[:, None] * x1
    hand = (model.nets["v"](x_t, t=t) - (x1 - 0.999 * x0)).pow(2).sum(1).mean()
    torch.testing.assert_close(compiled, hand, **TOL)


def test_realnvp_loss_is_the_change_of_variables():
    """−mean log p(x), log p(x) = log N(T(x); 0, I) + Σ log|det| of couplings and actnorms
    (the reversals are permutations), each layer written from its parameters."""
    model = L.load(_spec("realnvp", ""), D=2)
    x = _data()
    model.loss(x)  # actnorm's data-dependent initialisation
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    h, ladj = x, torch.zeros(x.shape[0])
    for layer in model.flow.layers:
        if isinstance(layer, AffineCoupling):
            b = layer.mask
            out = layer.net(h * b)
            s = layer.scale * torch.tanh(out[:, 0]) * (1 - b)
            h = h * torch.exp(s) + out[:, 1] * (1 - b)
            ladj = ladj + s.sum(1)
        elif isinstance(layer, ActNorm):
            h = h * torch.exp(layer.log_s) + layer.bias
            ladj = ladj + layer.log_s.sum()
        else:
            assert isinstance(layer, Reverse)
            h = h[:, [1, 0]]
    log_pz = -0.5 * h.pow(2).sum(1) - math.log(2 * math.pi)
    torch.testing.assert_close(model.loss(x), -(log_pz + ladj).mean(), **TOL)


def test_gan_loss_is_both_players_nonsaturating_losses():
    """softplus(−D(x)) + softplus(D(G(z))) for the critic on detached samples, plus
    softplus(−D(G(z))) for the generator, z ~ N(0, I_8), one draw of z."""
    nets = "  net G = MLP(hidden = [16])\n  net D = MLP(hidden = [16])"
    model = L.load(_spec("gan", nets), D=2)
    x = _data()
    torch.manual_seed(5)
    compiled = model.loss(x)
    torch.manual_seed(5)
    G, D = model.nets["G"], model.nets["D"]
    fake = G(torch.empty(x.shape[0], 8).normal_())
    critic = F.softplus(-D(x)).mean() + F.softplus(D(fake.detach())).mean()
    torch.testing.assert_close(compiled, critic + F.softplus(-D(fake)).mean(), **TOL)


def test_contrastive_divergence_loss_runs_the_declared_langevin_chains():
    """E(x) − E(x⁻), x⁻ after 60 steps x ← x − 0.01 ∇E(x) + 0.005 ξ from the replay buffer
    (5% restarted from the uniform box [−3, 3]²), the chain ends written back."""
    model = L.load(_spec("ebm", "  net E = MLP(hidden = [16])"), D=2)
    x = _data()
    E, replay = model.nets["E"], model.replay.clone()
    torch.manual_seed(7)
    compiled = model.loss(x)
    torch.manual_seed(7)
    noise = model.noise_box * (2 * torch.rand(x.shape[0], 2) - 1)
    idx = torch.randint(replay.shape[0], (x.shape[0],))
    fresh = torch.rand(x.shape[0]) < 0.05
    chain = torch.where(fresh[:, None], noise, replay[idx])
    for _ in range(60):
        chain.requires_grad_(True)
        (grad,) = torch.autograd.grad(E(chain).sum(), chain)
        chain = (chain - 0.01 * grad + 0.005 * torch.randn_like(chain)).detach()
    torch.testing.assert_close(compiled, E(x).mean() - E(chain).mean(), **TOL)
    torch.testing.assert_close(model.replay[idx], chain, rtol=0, atol=0)
