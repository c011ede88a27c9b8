"""Energy back end: Langevin/MALA moments on quadratic energies, the CD gradient against the
closed-form likelihood gradient, the score as -∇E, the replay buffer, and a training run."""

from __future__ import annotations

import math
import tempfile

import numpy as np
import pytest
import torch
from scipy import stats

import gendsl.lower as L
from gendsl.data import load_dataset
from gendsl.errors import UsageError
from gendsl.metrics.distances import w2
from gendsl.objectives.energy import (
    contrastive_divergence_loss,
    energy_score,
    langevin,
    langevin_temperature,
    replay_starts,
)
from gendsl.train import fit

STDLIB = ["ebm", "dsm", "ssm"]

MU = torch.tensor([1.0, -2.0], dtype=torch.float64)
SIGMA = torch.tensor([[1.0, 0.6], [0.6, 0.8]], dtype=torch.float64)


def quadratic_energy(x):
    """E(x) = ½ (x - μ)ᵀ Σ⁻¹ (x - μ), so exp(-E) is N(μ, Σ)."""
    d = x - MU
    return 0.5 * (d @ torch.linalg.inv(SIGMA) * d).sum(1)


def _moments(x):
    return x.mean(0), torch.cov(x.T)


@pytest.mark.parametrize("metropolis", [False, True])
def test_langevin_samples_gaussian_moments(metropolis):
    g = torch.Generator().manual_seed(0)
    x0 = torch.randn(3000, 2, generator=g, dtype=torch.float64) * 3
    x = langevin(quadratic_energy, x0, steps=150, step=0.1, metropolis=metropolis, generator=g)
    mean, cov = _moments(x)
    assert torch.allclose(mean, MU, atol=0.06)
    assert torch.allclose(cov, SIGMA, atol=0.08 if metropolis else 0.12)


def test_ula_stationary_variance_has_the_known_step_bias():
    """For E = x²/(2 s²) the update x' = (1 - h/s²) x + √(2h) ξ has the stationary variance
    s² / (1 - h / (2 s²)), which MALA corrects back to s²."""
    s2, h = 1.0, 0.4
    g = torch.Generator().manual_seed(1)
    x0 = torch.zeros(10000, 1, dtype=torch.float64)
    ula = langevin(lambda x: 0.5 * x[:, 0] ** 2 / s2, x0, steps=40, step=h, generator=g)
    mala = langevin(
        lambda x: 0.5 * x[:, 0] ** 2 / s2, x0, steps=80, step=h, metropolis=True, generator=g
    )
    assert abs(float(ula.var()) - s2 / (1 - h / (2 * s2))) < 0.04
    assert abs(float(mala.var()) - s2) < 0.04


def test_langevin_with_small_noise_targets_the_tempered_density():
    """noise ≠ √(2 step) samples exp(-E/T) with T = noise²/(2 step) (exactly, with MALA)."""
    step, noise = 0.05, 0.2
    temperature = langevin_temperature(step, noise)
    assert math.isclose(temperature, 0.4)
    g = torch.Generator().manual_seed(2)
    x0 = MU.expand(3000, 2).clone()
    x = langevin(
        quadratic_energy, x0, steps=150, step=step, noise=noise, metropolis=True, generator=g
    )
    assert torch.allclose(_moments(x)[1], temperature * SIGMA, atol=0.04)


def test_langevin_rejects_bad_settings_and_is_reproducible():
    x0 = torch.zeros(3, 2)
    with pytest.raises(UsageError, match=r"got -0\.1"):
        langevin(lambda x: x.sum(1), x0, steps=2, step=-0.1)
    a = langevin(
        lambda x: (x**2).sum(1), x0, steps=5, step=0.1, generator=torch.Generator().manual_seed(4)
    )
    b = langevin(
        lambda x: (x**2).sum(1), x0, steps=5, step=0.1, generator=torch.Generator().manual_seed(4)
    )
    assert torch.equal(a, b)


def test_cd_gradient_is_the_likelihood_gradient():
    """E_θ(x) = ½ θ x²: p_θ = N(0, 1/θ), -∂ log p_θ(x)/∂θ = ½ x² - 1/(2θ).  With exact model
    samples the CD surrogate's gradient is the mean of that over the data."""
    theta = torch.tensor(2.5, dtype=torch.float64, requires_grad=True)
    x_data = torch.tensor([0.3, -1.2, 0.8, 2.0], dtype=torch.float64)
    n = 20000
    u = (np.arange(n) + 0.5) / n
    x_model = torch.tensor(stats.norm(0, 1 / math.sqrt(2.5)).ppf(u))

    def energy(x):
        return 0.5 * theta * x**2

    loss = contrastive_divergence_loss(energy(x_data), energy(x_model))
    (grad,) = torch.autograd.grad(loss, theta)
    expected = float((0.5 * x_data**2).mean()) - 1 / (2 * 2.5)
    assert abs(float(grad) - expected) < 1e-3
    # the energy regulariser adds α ∂/∂θ mean(E⁺² + E⁻²) = α mean(2 E ∂E/∂θ) over both sets
    loss = contrastive_divergence_loss(energy(x_data), energy(x_model), alpha=0.1)
    (grad_reg,) = torch.autograd.grad(loss, theta)
    reg = 0.1 * sum(float((2 * energy(v).detach() * 0.5 * v**2).mean()) for v in (x_data, x_model))
    assert abs(float(grad_reg) - (expected + reg)) < 1e-3


def test_score_is_minus_grad_energy():
    m = L.load(
        """
        model q {
          data x : real[2]
          energy U(x) = 0.5 * (x - 1)^2 / 4
          loss dsm(sigma = 0.1)
        }
        """
    )
    x = torch.randn(6, 2)
    assert torch.allclose(m.energy(x), (0.5 * (x - 1) ** 2 / 4).sum(1))
    assert torch.allclose(m.score(x), -(x - 1) / 4, atol=1e-6)
    # a network energy: the score against central finite differences of E
    torch.manual_seed(0)
    net = L.load("stdlib/ebm.gen", D=2).double()
    x = torch.randn(5, 2, dtype=torch.float64)
    h = 1e-5
    fd = torch.stack(
        [(net.energy(x + h * e) - net.energy(x - h * e)) / (2 * h) for e in torch.eye(2).double()],
        1,
    )
    assert torch.allclose(net.score(x), -fd, atol=1e-6)
    assert torch.allclose(energy_score(net.energy, x), -fd, atol=1e-6)


@pytest.mark.parametrize("name", STDLIB)
def test_stdlib_spec_contract(name):
    torch.manual_seed(0)
    m = L.load(f"stdlib/{name}.gen", D=2)
    x = torch.randn(32, 2)
    loss = m.loss(x)
    assert loss.dim() == 0 and torch.isfinite(loss)
    loss.backward()
    out_bias = f"nets.E.{list(m.nets['E'].named_parameters())[-1][0]}"
    for pname, p in m.named_parameters():
        if pname == out_bias:
            # an energy's additive constant cancels from E⁺ - E⁻ and from the score
            assert p.grad is None or float(p.grad.abs().max()) < 1e-7
        else:
            assert p.grad is not None and p.grad.abs().sum() > 0, pname
    s = m.sample(9, steps=5, generator=torch.Generator().manual_seed(1))
    assert s.shape == (9, 2) and torch.isfinite(s).all()
    assert torch.equal(s, m.sample(9, steps=5, generator=torch.Generator().manual_seed(1)))
    with pytest.raises(UsageError):
        m.log_prob(x)


SHORT_CHAINS = """
import "stdlib/ebm.gen"
model short extends ebm {
  net E = MLP(hidden = [16])
  loss contrastive_divergence(sampler = langevin(steps = 3, step = 0.01), buffer = 10000)
}
"""


def test_replay_buffer_is_state_written_only_in_training():
    torch.manual_seed(0)
    m = L.load(SHORT_CHAINS, D=2)
    assert "replay" in m.state_dict() and m.replay.shape == (10000, 2)
    assert m.replay.abs().max() <= m.noise_box
    x = torch.randn(16, 2)
    m.eval()
    before = m.replay.clone()
    m.loss(x)
    assert torch.equal(m.replay, before)
    m.train()
    state = {k: v.clone() for k, v in m.state_dict().items()}
    torch.manual_seed(5)
    first = m.loss(x)
    assert (m.replay != before).any(dim=1).sum() >= 1
    # resuming from the saved state replays the same chains exactly
    m2 = L.load(SHORT_CHAINS, D=2)
    m2.load_state_dict(state)
    torch.manual_seed(5)
    assert torch.equal(m2.loss(x), first)
    assert torch.equal(m2.replay, m.replay)


def test_replay_starts_reinitialise_a_fraction():
    buffer = torch.arange(1000.0).reshape(1000, 1)
    noise = -torch.ones(4000, 1)
    g = torch.Generator().manual_seed(0)
    idx, x0 = replay_starts(buffer, 4000, noise, reinit=0.25, generator=g)
    fresh = x0[:, 0] < 0
    assert abs(float(fresh.float().mean()) - 0.25) < 0.03
    assert torch.equal(x0[~fresh, 0], idx[~fresh].float())


def test_short_training_improves_w2():
    torch.set_num_threads(1)
    torch.manual_seed(0)
    data = load_dataset("8gaussians").x
    ref = data[torch.randperm(len(data), generator=torch.Generator().manual_seed(1))[:1000]]
    m = L.load(
        """
        import "stdlib/dsm.gen"
        model small extends dsm {
          net E = MLP(hidden = [64, 64])
          loss dsm(sigma = 0.2)
        }
        """,
        D=2,
    )

    def score():
        x = m.sample(
            1000, steps=200, step=0.01, noise=None, generator=torch.Generator().manual_seed(0)
        )
        return w2(x, ref)

    before = score()
    with tempfile.TemporaryDirectory() as out:
        fit(
            m,
            data,
            steps=300,
            batch_size=128,
            lr=3e-3,
            optimizer="adam",
            out_dir=out,
            progress=False,
            ema=None,
            grad_clip=None,
        )
    after = score()
    assert after < 0.6 * before, (before, after)
