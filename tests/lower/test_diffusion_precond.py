"""Network preconditioning of the diffusion back end (c_in, c_out), the VE SDE's t_min, the
PF-ODE likelihood of every stdlib process with the exact Gaussian score, a trained VE model
sampled by predictor-corrector, and a UNet on 8x8 digit images."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from torch import nn

from gendsl.lower import load
from gendsl.lower.diffusion_core import DiffusionModel
from gendsl.metrics import w2
from gendsl.resources import stdlib_dir

torch.set_num_threads(1)

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

# ------------------------------------------------------------------ independent kernels
# x_t = a(t) x0 + s(t) eps for the stdlib processes, written out from Song et al. 2021 (eqs.
# 29-30, appendix B) and Ho et al. 2020 (eq. 4), not taken from gendsl.processes.


def _B(t: torch.Tensor) -> torch.Tensor:
    return 0.1 * t + 0.5 * 19.9 * t**2


def vp_kernel(t):
    return torch.exp(-0.5 * _B(t)), torch.sqrt(1 - torch.exp(-_B(t)))


def subvp_kernel(t):
    return torch.exp(-0.5 * _B(t)), 1 - torch.exp(-_B(t))


def ve_kernel(t):
    # sigma_min = 0.01, sigma_max = 10; variance sigma(t)^2 - sigma_min^2
    return torch.ones_like(t), 0.01 * torch.sqrt(1000.0 ** (2 * t) - 1)


def ddpm_kernel(t):
    """sqrt(abar), sqrt(1 - abar) at t = k/K, log abar linear in t in between (the chain's
    continuous view); t is clamped to [0, 1] (dopri5 probes its first step past the end)."""
    betas = torch.linspace(1e-4, 0.02, 1000, dtype=torch.float64)
    log_abar = torch.cat([torch.zeros(1, dtype=torch.float64), torch.log(1 - betas).cumsum(0)])
    u = (t.double() * 1000).clamp(0, 1000)
    k = u.floor().long().clamp(max=999)
    out = (log_abar[k] + (u - k) * (log_abar[k + 1] - log_abar[k])).to(t.dtype)
    return torch.exp(0.5 * out), torch.sqrt(-torch.expm1(out))


KERNELS = {
    "vp_sde": vp_kernel,
    "subvp_sde": subvp_kernel,
    "ve_sde": ve_kernel,
    "ddpm": ddpm_kernel,
}


def _stdlib(name: str, **sizes: int) -> DiffusionModel:
    return load(str(stdlib_dir() / f"{name}.gen"), **sizes)


# ------------------------------------------------------------------ preconditioning


@pytest.mark.parametrize("name", list(KERNELS))
def test_network_input_has_unit_variance_at_every_time(name):
    model = _stdlib(name, D=2)
    gen = torch.Generator().manual_seed(0)
    x0 = torch.randn(20000, 2, generator=gen)  # unit data, sigma_data = 1
    ts = [model.process.t_min, 0.1, 0.3, 0.6, 1.0]
    for t_value in ts:
        t = torch.full((20000,), t_value)
        a, s = KERNELS[name](t)
        x_t = a[:, None] * x0 + s[:, None] * torch.randn(20000, 2, generator=gen)
        var = model.network_input(x_t, t).var()
        assert float(var) == pytest.approx(1.0, abs=0.04), (t_value, float(x_t.var()))
    if name == "ve_sde":  # without c_in the input variance grows to 1 + sigma_max^2
        assert float(x_t.var()) > 50


class Recorder(nn.Module):
    """A stand-in network that records its input and outputs ones."""

    def forward(self, x, t=None, y=None):
        self.seen = x
        return torch.ones_like(x)


@pytest.mark.parametrize(
    ("predict", "expected_c_out"),
    [
        ("eps", lambda a, s: torch.ones_like(s)),
        ("x0", lambda a, s: torch.ones_like(s)),
        ("v", lambda a, s: torch.sqrt(a**2 + s**2)),
        ("score", lambda a, s: 1 / s),
    ],
)
def test_the_net_sees_c_in_x_t_and_its_output_is_scaled_by_c_out(predict, expected_c_out):
    spec = (stdlib_dir() / "ve_sde.gen").read_text().replace("predict score", f"predict {predict}")
    model = load(spec, D=2)
    model.nets["s"] = Recorder()
    x_t, t = torch.randn(5, 2), torch.tensor([0.06, 0.2, 0.5, 0.8, 1.0])
    out = model.net_output(x_t, t, {})
    a, s = ve_kernel(t)
    torch.testing.assert_close(model.nets["s"].seen, x_t / torch.sqrt(a**2 + s**2)[:, None])
    torch.testing.assert_close(out, expected_c_out(a, s)[:, None].expand(5, 2))


@pytest.mark.parametrize("predict", ["eps", "x0", "v", "score"])
def test_c_out_makes_the_raw_network_target_unit_variance(predict):
    """The regression target divided by c_out(t) has unit variance at every t (unit data)."""
    from gendsl.lower.diffusion_core import c_out

    gen = torch.Generator().manual_seed(1)
    for t_value in (0.06, 0.3, 1.0):
        t = torch.full((20000,), t_value)
        a, s = ve_kernel(t)
        x0, eps = torch.randn(20000, generator=gen), torch.randn(20000, generator=gen)
        target = {"eps": eps, "x0": x0, "v": a * eps - s * x0, "score": -eps / s}[predict]
        raw = target / c_out(predict, a, s, 1.0)
        assert float(raw.var()) == pytest.approx(1.0, abs=0.04), t_value


def test_ve_t_min_is_where_the_kernel_std_reaches_sigma_min():
    model = _stdlib("ve_sde", D=2)
    t_min = torch.tensor(model.process.t_min, dtype=torch.float64)
    assert float(ve_kernel(t_min)[1]) == pytest.approx(0.01, rel=1e-9)
    assert float(model.process.marginal(t_min)[1]) == pytest.approx(0.01, rel=1e-9)


# ------------------------------------------------------------------ PF-ODE likelihood

MU = torch.tensor([0.5, -0.3])
SIGMA0 = 0.8


class ExactGaussianScore(DiffusionModel):
    """The exact score of p_t for data N(MU, SIGMA0² I) under an independently written kernel."""

    kernel = staticmethod(vp_kernel)

    def score(self, x_t, t, cond):
        a, s = self.kernel(t)
        a, s = a[:, None], s[:, None]
        return -(x_t - a * MU) / (a**2 * SIGMA0**2 + s**2)


def _gaussian_log_prob(x, mean, var):
    return -0.5 * ((x - mean) ** 2).sum(1) / var - 0.5 * x.shape[1] * math.log(2 * math.pi * var)


def _expected_log_prob(model: DiffusionModel, kernel, x: torch.Tensor) -> torch.Tensor:
    """log p_{t_min}(x) plus the error of the prior N(0, s_T² I) standing in for p_T.

    For Gaussian data the PF-ODE is linear: x_T = a_T MU + √(v_T / v_0) (x - a_0 MU) with
    v_t = a_t² SIGMA0² + s_t², so the likelihood it gives is log p_{t_min}(x) +
    log N(x_T; 0, s_T²) - log N(x_T; a_T MU, v_T), exactly.
    """
    t0, t1 = (torch.tensor(v, dtype=torch.float64) for v in (model.process.t_min, 1.0))
    (a0, s0), (a1, s1) = kernel(t0), kernel(t1)
    v0, v1 = a0**2 * SIGMA0**2 + s0**2, a1**2 * SIGMA0**2 + s1**2
    x, mu = x.double(), MU.double()
    x_T = a1 * mu + torch.sqrt(v1 / v0) * (x - a0 * mu)
    prior_error = _gaussian_log_prob(x_T, 0.0, s1**2) - _gaussian_log_prob(x_T, a1 * mu, v1)
    return (_gaussian_log_prob(x, a0 * mu, v0) + prior_error).float()


@pytest.mark.parametrize("name", list(KERNELS))
def test_log_prob_of_every_process_is_the_gaussian_density_with_the_exact_score(name):
    base = _stdlib(name, D=2)
    model = ExactGaussianScore(base.checked, {"D": 2})
    model.kernel = KERNELS[name]
    x = torch.tensor([[0.5, -0.3], [1.5, 0.2], [-0.7, -1.1]])
    got = model.log_prob(x)
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, _expected_log_prob(model, KERNELS[name], x), atol=2e-3, rtol=0)


# ------------------------------------------------------------------ trained models


def _mixture(n: int, gen: torch.Generator) -> torch.Tensor:
    centres = torch.tensor([[2.0, 2.0], [-2.0, 2.0], [2.0, -2.0], [-2.0, -2.0]])
    return centres[torch.randint(0, 4, (n,), generator=gen)] + 0.3 * torch.randn(
        n, 2, generator=gen
    )


@pytest.mark.slow
def test_a_trained_ve_score_model_samples_the_mixture_with_pc():
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    spec = (stdlib_dir() / "ve_sde.gen").read_text().replace("[256, 256, 256]", "[64, 64]")
    model = load(spec, D=2)
    held_out = _mixture(600, gen)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(800):
        opt.zero_grad()
        model.loss(_mixture(256, gen)).backward()
        opt.step()
    model.eval()
    # a diverging sampler lands at W2 of 10 or more; the
    # mixture's own two-sample W2 at n = 600 is about 0.37 and this small model's ancestral
    # samples (50 steps) reach about 0.6
    for steps in (25, 100):  # NFE 49 and 199
        x = model.sample(600, method="pc", steps=steps, generator=gen)
        assert torch.isfinite(x).all()
        assert w2(x, held_out) < 1.0, steps


# ------------------------------------------------------------------ UNet on digit images


def test_unet_on_digit_images_compiles_and_a_few_steps_lower_the_loss():
    torch.manual_seed(0)
    model = load(str(EXAMPLES / "vp_sde_digits_unet.gen"))
    assert model.data_shape == (1, 8, 8)
    assert type(model.nets["eps"]).__name__ == "UNet"
    x = torch.rand(16, 1, 8, 8).round()

    def fixed_loss() -> torch.Tensor:
        torch.manual_seed(5)  # the same t and eps every time
        return model.loss(x)

    before = float(fixed_loss())
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    for _ in range(8):
        opt.zero_grad()
        loss = fixed_loss()
        loss.backward()
        opt.step()
    grads = [p.grad for p in model.nets["eps"].parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert float(fixed_loss()) < 0.8 * before
    out = model.sample(3, steps=4, generator=torch.Generator().manual_seed(0))
    assert out.shape == (3, 1, 8, 8) and torch.isfinite(out).all()
    assert model.last_nfe == 4
