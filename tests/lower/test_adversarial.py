"""Adversarial back end: losses against hand-written formulas, penalties against hand autograd,
the optimal-discriminator identity, weight clipping, the two-player step, the clipped critic's
non-linearity, and training runs of the stdlib specs with their own optimiser settings."""

from __future__ import annotations

import copy
import math
import tempfile

import numpy as np
import pytest
import torch
from scipy import integrate, stats

import gendsl.lower as L
from gendsl.data import load_dataset
from gendsl.errors import UsageError
from gendsl.ir import Opt
from gendsl.metrics.distances import w2
from gendsl.objectives.adversarial import (
    clip_weights_,
    dragan_penalty,
    gan_critic_loss,
    gan_generator_loss,
    gradient_penalty,
    hinge_critic_loss,
    hinge_generator_loss,
    wasserstein_critic_loss,
)
from gendsl.train import fit

STDLIB = ["gan", "wgan", "wgan_gp", "dragan", "sngan"]

SMALL = """
import "stdlib/{base}.gen"
model small extends {base} {{
  net G = MLP(hidden = [32, 32])
  net D = MLP(hidden = [32, 32])
}}
"""


@pytest.mark.parametrize("name", STDLIB)
def test_stdlib_spec_contract(name):
    torch.manual_seed(0)
    m = L.load(f"stdlib/{name}.gen", D=2)
    x = torch.randn(32, 2)
    loss = m.loss(x)
    assert loss.dim() == 0 and torch.isfinite(loss)
    loss.backward()
    for pname, p in m.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), pname
        assert p.grad.abs().sum() > 0, pname
    g = torch.Generator().manual_seed(3)
    s = m.sample(7, generator=g)
    assert s.shape == (7, 2)
    assert torch.equal(s, m.sample(7, generator=torch.Generator().manual_seed(3)))
    with pytest.raises(UsageError):
        m.log_prob(x)
    groups = m.param_groups()
    critic = {id(p) for p in groups["critic"]}
    assert critic == {id(p) for p in m.nets["D"].parameters()}
    assert {id(p) for p in groups["generator"]} == {id(p) for p in m.nets["G"].parameters()}


def test_gan_losses_match_binary_cross_entropy():
    torch.manual_seed(1)
    d_real, d_fake = 3 * torch.randn(50), 3 * torch.randn(40)
    p_real, p_fake = torch.sigmoid(d_real), torch.sigmoid(d_fake)
    expected = -(torch.log(p_real).mean() + torch.log(1 - p_fake).mean())
    assert torch.allclose(gan_critic_loss(d_real, d_fake), expected, atol=1e-5)
    minimax = gan_generator_loss(d_fake, form="minimax")
    assert torch.allclose(minimax, torch.log(1 - p_fake).mean(), atol=1e-5)
    nonsat = gan_generator_loss(d_fake, form="nonsaturating")
    assert torch.allclose(nonsat, -torch.log(p_fake).mean(), atol=1e-5)
    # d/dd of the two generator losses: -σ(d) (saturates as σ -> 0) and -(1 - σ(d))
    d = d_fake.clone().requires_grad_(True)
    (g_mm,) = torch.autograd.grad(gan_generator_loss(d, form="minimax"), d)
    (g_ns,) = torch.autograd.grad(gan_generator_loss(d, form="nonsaturating"), d)
    assert torch.allclose(g_mm, -p_fake / 40, atol=1e-6)
    assert torch.allclose(g_ns, -(1 - p_fake) / 40, atol=1e-6)
    with pytest.raises(UsageError, match="'saturating'"):
        gan_generator_loss(d_fake, form="saturating")


def test_hinge_and_wasserstein_formulas():
    d_real = torch.tensor([2.0, 0.5, -1.0, 0.0])
    d_fake = torch.tensor([-2.0, 0.3, 1.5])
    real_terms = [max(0.0, 1 - v) for v in d_real.tolist()]
    fake_terms = [max(0.0, 1 + v) for v in d_fake.tolist()]
    expected = sum(real_terms) / 4 + sum(fake_terms) / 3
    assert math.isclose(float(hinge_critic_loss(d_real, d_fake)), expected, rel_tol=1e-6)
    assert math.isclose(
        float(hinge_generator_loss(d_fake)), -sum(d_fake.tolist()) / 3, rel_tol=1e-6
    )
    w = float(wasserstein_critic_loss(d_real, d_fake))
    assert math.isclose(w, sum(d_fake.tolist()) / 3 - sum(d_real.tolist()) / 4, rel_tol=1e-6)


def test_optimal_discriminator_gives_log4_minus_two_jsd():
    """With D* = p/(p+q) the critic loss is log 4 - 2 JSD(p||q) (Goodfellow et al. 2014,
    Thm. 1); p = N(0, 1), q = N(1.5, 0.7^2), JSD by quadrature."""
    p, q = stats.norm(0, 1), stats.norm(1.5, 0.7)

    def m(x):
        return 0.5 * (p.pdf(x) + q.pdf(x))

    kl_pm = integrate.quad(lambda x: p.pdf(x) * np.log(p.pdf(x) / m(x)), -12, 12)[0]
    kl_qm = integrate.quad(lambda x: q.pdf(x) * np.log(q.pdf(x) / m(x)), -12, 12)[0]
    jsd = 0.5 * (kl_pm + kl_qm)
    n = 20000
    u = (np.arange(n) + 0.5) / n  # quantile points: a deterministic, accurate expectation
    x_p, x_q = torch.tensor(p.ppf(u)), torch.tensor(q.ppf(u))

    def logit_d_star(x):
        return torch.tensor(p.logpdf(x.numpy()) - q.logpdf(x.numpy()))

    value = float(gan_critic_loss(logit_d_star(x_p), logit_d_star(x_q)))
    assert abs(value - (math.log(4) - 2 * jsd)) < 2e-3
    # D* is the minimiser: any perturbation of its logit raises the loss
    for shift in (-0.3, 0.3):
        worse = gan_critic_loss(logit_d_star(x_p) + shift, logit_d_star(x_q) + shift)
        assert float(worse) > value


def test_gradient_penalty_matches_hand_autograd():
    """Critic D(x) = Σ a_i x_i² + b·x: ∇D = 2 a x + b, so the penalty is known in closed form
    at the interpolates x̂ = ε x + (1 - ε) x̃ with ε from the same generator."""
    torch.manual_seed(2)
    a, b = torch.tensor([0.7, -1.3, 0.4]), torch.tensor([0.2, 0.5, -0.1])

    def critic(x):
        return (a * x**2).sum(1) + x @ b

    x, x_fake = torch.randn(64, 3), torch.randn(64, 3) + 2
    value = gradient_penalty(critic, x, x_fake, generator=torch.Generator().manual_seed(5))
    eps = torch.rand((64, 1), generator=torch.Generator().manual_seed(5))
    x_hat = eps * x + (1 - eps) * x_fake
    expected = (((2 * a * x_hat + b).norm(dim=1) - 1) ** 2).mean()
    assert torch.allclose(value, expected, atol=1e-6)


def test_gradient_penalty_is_differentiable_in_critic_parameters():
    """For a linear critic D(x) = w·x the penalty is (|w| - 1)², with gradient
    2 (|w| - 1) w / |w| in w — also when evaluated under no_grad."""
    w = torch.tensor([0.6, -2.0, 1.1], requires_grad=True)
    x = torch.randn(16, 3)
    with torch.no_grad():
        pen = dragan_penalty(lambda v: v @ w, x, generator=torch.Generator().manual_seed(0))
    (grad,) = torch.autograd.grad(pen, w)
    norm = w.detach().norm()
    assert torch.allclose(pen.detach(), (norm - 1) ** 2, atol=1e-6)
    assert torch.allclose(grad, 2 * (norm - 1) * w.detach() / norm, atol=1e-5)


def test_dragan_points_perturb_the_data():
    """DRAGAN evaluates at x + 0.5 std(x) δ: for D(x) = ½|x|², ∇D = x̂, so the penalty is the
    mean of (|x̂| - 1)² at those points."""
    x = torch.randn(32, 2) * 3
    value = dragan_penalty(
        lambda v: 0.5 * (v**2).sum(1), x, generator=torch.Generator().manual_seed(1)
    )
    delta = torch.randn((32, 2), generator=torch.Generator().manual_seed(1))
    x_hat = x + 0.5 * x.std() * delta
    assert torch.allclose(value, ((x_hat.norm(dim=1) - 1) ** 2).mean(), atol=1e-6)
    with pytest.raises(UsageError, match="-1"):
        dragan_penalty(lambda v: v.sum(1), x, scale=-1)


def _optimizers(model, lr=1e-3):
    return {k: torch.optim.Adam(v, lr=lr) for k, v in model.param_groups().items()}


def test_wgan_clip_keeps_critic_weights_in_range_and_counts_steps():
    torch.manual_seed(0)
    m = L.load("stdlib/wgan.gen", D=2)
    assert m.critic_steps == 5 and m.penalty == "clip" and m.penalty_value == 0.01
    opts = _optimizers(m, lr=0.1)  # large steps would leave [-c, c] without clipping
    out = m.training_step(torch.randn(64, 2), 0, opts)
    assert set(out) >= {"loss", "critic_loss", "generator_loss"}
    for p in m.nets["D"].parameters():
        assert p.abs().max() <= 0.01 + 1e-12
    assert max(p.abs().max() for p in m.nets["G"].parameters()) > 0.01
    critic_state = opts["critic"].state[next(m.nets["D"].parameters())]
    generator_state = opts["generator"].state[next(m.nets["G"].parameters())]
    assert int(critic_state["step"]) == 5 and int(generator_state["step"]) == 1
    params = [torch.nn.Parameter(torch.tensor([-3.0, 0.25, 2.0]))]
    clip_weights_(params, 0.5)
    assert params[0].tolist() == [-0.5, 0.25, 0.5]


def test_critic_expression_and_step_updates_each_player_on_its_loss():
    spec = """
    model g {
      data x : real[2]
      latent z : real[3]
      net G = MLP(hidden = [16])
      net D = MLP(hidden = [16])
      z ~ Normal(0, 1)
      x = G(z)
      critic c = 2 * D(x)
      loss hinge
      train { critic_steps = 2 }
    }
    """
    torch.manual_seed(0)
    m = L.load(spec)
    x = torch.randn(8, 2)
    assert torch.allclose(m.critic(x), 2 * m.nets["D"](x))
    before = copy.deepcopy(m)
    groups = m.param_groups()
    opts = {
        "critic": torch.optim.SGD(groups["critic"], lr=0.05),
        "generator": torch.optim.SGD(groups["generator"], lr=0.1),
    }
    torch.manual_seed(1)
    m.training_step(x, 0, opts)
    # replay by hand: two critic SGD steps on the hinge loss, then one generator step on
    # -E c(G(z)) with the updated critic, the noise drawn in the same order
    torch.manual_seed(1)
    d_params, g_params = list(before.nets["D"].parameters()), list(before.nets["G"].parameters())
    for _ in range(2):
        x_fake = before.generate(8).detach()
        loss = (
            torch.relu(1 - before.critic(x)).mean() + torch.relu(1 + before.critic(x_fake)).mean()
        )
        grads = torch.autograd.grad(loss, d_params)
        with torch.no_grad():
            for p, g in zip(d_params, grads, strict=True):
                p -= 0.05 * g
    loss = -before.critic(before.generate(8)).mean()
    grads = torch.autograd.grad(loss, g_params)
    with torch.no_grad():
        for p, g in zip(g_params, grads, strict=True):
            p -= 0.1 * g
    for (name, p), q in zip(m.named_parameters(), before.parameters(), strict=True):
        assert torch.allclose(p, q, atol=1e-6), name


def test_short_training_improves_w2():
    torch.manual_seed(0)
    torch.set_num_threads(1)
    data = load_dataset("moons").x
    ref = data[torch.randperm(len(data), generator=torch.Generator().manual_seed(1))[:1000]]
    m = L.load(SMALL.format(base="gan"), D=2)

    def score():
        return w2(m.sample(1000, generator=torch.Generator().manual_seed(0)), ref)

    before = score()
    with tempfile.TemporaryDirectory() as out:
        fit(
            m,
            data,
            steps=300,
            batch_size=128,
            lr=2e-3,
            optimizer="adam",
            betas=(0.5, 0.999),
            out_dir=out,
            progress=False,
            ema=None,
            grad_clip=None,
        )
    after = score()
    assert after < 0.6 * before, (before, after)


def test_clipped_stdlib_critic_is_not_affine():
    """Weight clipping must leave the wgan critic able to see more than the mean: on a grid of
    the data's scale, the clipped critic is far from its least-squares affine fit.  (A SiLU
    critic clipped to [-0.01, 0.01] is affine to < 1 %, since silu(u) = u/2 + u²/4 + O(u⁴), so
    its generator only matches the data's mean and collapses.)"""
    torch.manual_seed(0)
    m = L.load("stdlib/wgan.gen", D=2)
    clip_weights_(m.critic_parameters(), m.penalty_value)
    g = torch.linspace(-2, 2, 41)
    x = torch.cartesian_prod(g, g)
    with torch.no_grad():
        d = m.critic(x).double()
    design = torch.cat([x.double(), torch.ones(len(x), 1, dtype=torch.float64)], 1)
    affine = design @ torch.linalg.lstsq(design, d[:, None]).solution
    residual = (d - affine[:, 0]).norm() / (d - d.mean()).norm()
    assert residual > 0.1, float(residual)


def _spec_optimizer(model) -> dict[str, object]:
    """The ``fit`` keywords of the spec's ``optimizer = adam(lr, betas)``."""
    opt = model.checked.train["optimizer"]
    assert isinstance(opt, Opt)
    return {"optimizer": opt.name, "lr": opt.kwargs["lr"], "betas": tuple(opt.kwargs["betas"])}


@pytest.mark.parametrize(("name", "steps"), [("wgan", 120), ("wgan_gp", 200)])
def test_wasserstein_specs_train_with_their_own_settings(name, steps):
    """A short run of the stdlib spec as it ships (networks, critic_steps, Adam settings) fits
    a Gaussian with unequal scales: W2 falls below 0.4 of its start and both standard
    deviations match the data's (the generator does not collapse onto the mean)."""
    torch.manual_seed(0)
    torch.set_num_threads(1)
    scale, shift = torch.tensor([1.0, 0.3]), torch.tensor([0.5, -0.5])
    data = torch.randn(4000, 2, generator=torch.Generator().manual_seed(0)) * scale + shift
    ref = data[:1000]
    m = L.load(f"stdlib/{name}.gen", D=2)

    def draw():
        return m.sample(1000, generator=torch.Generator().manual_seed(0))

    before = w2(draw(), ref)
    with tempfile.TemporaryDirectory() as out:
        fit(
            m,
            data,
            steps=steps,
            batch_size=128,
            out_dir=out,
            progress=False,
            ema=None,
            grad_clip=None,
            **_spec_optimizer(m),
        )
    s = draw()
    after = w2(s, ref)
    assert after < 0.4 * before, (before, after)
    ratio = s.std(0) / ref.std(0)
    assert ((ratio > 0.75) & (ratio < 1.3)).all(), ratio.tolist()
