"""The flow family's compiled models: stdlib specs, exact likelihood against closed forms and
quadrature, CNF against the matrix exponential, dequantised images, errors, and training."""

from __future__ import annotations

import math

import pytest
import torch

import gendsl.lower as L
from gendsl.data import load_dataset
from gendsl.errors import SpecError, UsageError
from gendsl.lower.cnf import CNF
from gendsl.lower.flow import FlowModel
from gendsl.lower.flow_layers import ActNorm, InvConv
from gendsl.metrics import w2
from gendsl.resources import stdlib_dir
from gendsl.train import fit

STDLIB_FLOWS = ["realnvp", "glow", "ffjord"]


def _spec(body: str, data: str = "real[2]", latent: str = "real[2]") -> str:
    return f"""model m {{
  data x : {data}
  latent z : {latent}
  z ~ Normal(0, 1)
  flow f {{ {body} }}
  x = f(z)
  loss nll
}}"""


@pytest.mark.parametrize("name", STDLIB_FLOWS)
def test_stdlib_flow_compiles_trains_and_samples(name):
    torch.manual_seed(0)
    model = L.load(stdlib_dir() / f"{name}.gen", D=3)
    assert isinstance(model, FlowModel)
    model.loss(torch.randn(32, 3) * 2 + 1)  # actnorm's data-dependent init
    loss = model.loss(torch.randn(32, 3) * 2 + 1)
    assert torch.isfinite(loss)
    loss.backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), pname
        assert p.grad.abs().sum() > 0, pname
    x = model.sample(7, generator=torch.Generator().manual_seed(0))
    assert x.shape == (7, 3) and torch.isfinite(x).all()
    assert f"model {name}: flow family" in model.describe()


def test_affine_flow_log_prob_and_samples_match_the_gaussian_closed_form():
    torch.manual_seed(0)
    model = L.load(_spec("actnorm; invconv(lu = false); actnorm"))
    act1, conv, act2 = model.flow.layers
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.4 * torch.randn_like(p))
    model.eval()

    x = torch.randn(50, 2) * 3
    with torch.no_grad():
        # T(x) = A x + c  =>  x ~ N(-A⁻¹c, (AᵀA)⁻¹)
        d1, d2 = torch.diag(act1.log_s.exp()), torch.diag(act2.log_s.exp())
        a = d2 @ conv.weight @ d1
        c = d2 @ conv.weight @ act1.bias + act2.bias
        a_inv = torch.linalg.inv(a)
        gauss = torch.distributions.MultivariateNormal(-a_inv @ c, a_inv @ a_inv.T)
        torch.testing.assert_close(model.log_prob(x), gauss.log_prob(x), rtol=1e-5, atol=1e-5)
        s = model.sample(40_000, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(
        s.mean(0), gauss.mean, atol=0.05 * float(gauss.stddev.max()), rtol=0
    )
    torch.testing.assert_close(
        torch.cov(s.T), gauss.covariance_matrix, atol=0.05 * float(gauss.variance.max()), rtol=0
    )


def test_realnvp_density_integrates_to_one():
    torch.manual_seed(0)
    model = L.load(
        _spec("repeat 3 { affine_coupling(net = MLP(hidden = [16])); actnorm; reverse }")
    )
    model.loss(torch.randn(64, 2) * torch.tensor([1.5, 0.7]))
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.3 * torch.randn_like(p))
    model.eval()
    g = torch.linspace(-9, 9, 241)
    grid = torch.cartesian_prod(g, g)
    with torch.no_grad():
        mass = model.log_prob(grid).exp().sum() * (g[1] - g[0]) ** 2
    assert abs(float(mass) - 1.0) < 0.01


def test_sampling_inverts_the_flow():
    torch.manual_seed(0)
    model = L.load(stdlib_dir() / "glow.gen", D=4)
    model.loss(torch.randn(64, 4) + 3)
    model.eval()
    x = model.sample(16, generator=torch.Generator().manual_seed(5))
    u = torch.rand(16, 4, generator=torch.Generator().manual_seed(5))
    z = torch.distributions.Normal(0.0, 1.0).icdf(u)
    torch.testing.assert_close(model.flow(x), z, atol=1e-4, rtol=1e-4)


def _linear_cnf(trace: str) -> tuple[FlowModel, torch.Tensor]:
    model = L.load(
        _spec(
            f"cnf(net = MLP(hidden = [], time = concat), trace = {trace}, solver = dopri5, "
            f"rtol = 0.000001, atol = 0.000001)",
            "real[3]",
            "real[3]",
        )
    )
    (cnf,) = model.flow.layers
    linear = cnf.net.body[0]
    torch.manual_seed(0)
    w = 0.5 * torch.randn(3, 3)
    with torch.no_grad():
        linear.weight.zero_()
        linear.weight[:, :3] = w
        linear.bias.zero_()
    return model, w


def test_cnf_with_a_linear_field_is_the_matrix_exponential():
    """dx/dt = W x: T(x) = x(0) = exp(-W) x and log|det ∂T/∂x| = -tr W (Chen et al. 2018)."""
    model, w = _linear_cnf("exact")
    model.eval()
    x = torch.randn(5, 3)
    z, ladj = model.flow.call_and_ladj(x)
    torch.testing.assert_close(z, x @ torch.linalg.matrix_exp(-w).T, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(ladj, -torch.trace(w).expand(5), atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(model.flow.inverse(z), x, atol=1e-4, rtol=1e-4)
    assert model.last_nfe > 0


def test_cnf_hutchinson_is_unbiased_in_training_and_exact_in_eval():
    model, w = _linear_cnf("hutchinson")
    x = torch.randn(1, 3).expand(4000, 3)
    (cnf,) = model.flow.layers
    assert isinstance(cnf, CNF)
    with torch.no_grad():
        _, noisy = model.flow.train().call_and_ladj(x)
        _, exact = model.flow.eval().call_and_ladj(x[:2])
    off = w - torch.diag(torch.diag(w))
    # εᵀWε = tr W + Σ_{i≠j} W_ij ε_i ε_j: variance Σ_{i<j} (W_ij + W_ji)²
    sd = math.sqrt(float(((off + off.T) ** 2).sum() / 2) / 4000)
    assert noisy.std() > 0.01
    assert abs(float(noisy.mean() + torch.trace(w))) < 4 * sd
    torch.testing.assert_close(exact, -torch.trace(w).expand(2), atol=1e-4, rtol=1e-4)


def test_cnf_held_out_loss_estimates_the_trace_and_log_prob_stays_exact():
    """In eval mode the loss (the training loop's held-out loss) uses Hutchinson's estimate —
    one probe instead of D backward passes — and log_prob the exact divergence, after it too."""
    model, w = _linear_cnf("hutchinson")
    model.eval()
    x = torch.randn(1, 3).expand(4000, 3)
    base = torch.distributions.Normal(0.0, 1.0)
    with torch.no_grad():
        z = model.flow.call_and_ladj(x[:1])[0]
        exact_nll = -float(base.log_prob(z).sum() - torch.trace(w))
        first, second = model.loss(x), model.loss(x)
        lp = model.log_prob(x[:2])
    assert float(first) != float(second)  # a fresh probe per call
    off = w - torch.diag(torch.diag(w))
    sd = math.sqrt(float(((off + off.T) ** 2).sum() / 2) / 4000)
    assert abs(float(first) - exact_nll) < 4 * sd
    torch.testing.assert_close(lp, torch.full((2,), -exact_nll), atol=1e-4, rtol=1e-4)
    assert not any(m.estimate for m in model.flow.modules() if isinstance(m, CNF))


def test_image_flow_on_digits_dequantises_and_reports_bits_per_dim():
    spec = _spec(
        "squeeze; repeat 2 { actnorm; invconv; affine_coupling(mask = half, "
        "net = MLP(hidden = [32])) }; split; actnorm; affine_coupling(mask = alternate, "
        "net = MLP(hidden = [32]))",
        "image[1, 8, 8]",
        "real[64]",
    )
    torch.manual_seed(0)
    model = L.load(spec)
    model.levels = 17
    x = load_dataset("digits_image", n=64).x
    loss = model.loss(x)
    assert torch.isfinite(loss)
    model.eval()
    y_gen, lp_gen = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    u = torch.rand(x.shape, generator=y_gen)
    y = (torch.round(x * 16) + u) / 17
    expected = model.log_prob(y) - 64 * math.log(17)
    got = model.dequantized_log_prob(x, generator=lp_gen)
    torch.testing.assert_close(got, expected)
    bpd = model.bits_per_dim(x, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(bpd, -expected / (64 * math.log(2)))
    assert model.sample(5).shape == (5, 1, 8, 8)
    assert "Split[" in model.describe()


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ("squeeze", "squeeze needs image data"),
        ("split", "split factors out channels of image data"),
        ("affine_coupling(net = MLP(hidden = [8], time = concat))", "takes no time"),
    ],
)
def test_layers_that_do_not_fit_the_data_are_spec_errors(body, words):
    with pytest.raises(SpecError, match=words):
        L.load(_spec(body))


def test_a_coupling_with_nothing_to_condition_on_is_a_spec_error():
    with pytest.raises(SpecError, match="leaves no"):
        L.load(_spec("affine_coupling(mask = half)", "real[1]", "real[1]"))


def test_latent_of_the_wrong_size_is_a_spec_error():
    with pytest.raises(SpecError, match="maps x"):
        L.load(_spec("actnorm", "real[2]", "real[3]"))


def test_bad_sampling_options_raise_usage_errors():
    model = L.load(_spec("actnorm"))
    with pytest.raises(UsageError, match="ode"):
        model.sample(3, method="ode")
    with pytest.raises(UsageError, match="steps=4"):
        model.sample(3, steps=4)


def test_state_dict_round_trip_keeps_actnorm_initialisation():
    torch.manual_seed(0)
    model = L.load(stdlib_dir() / "realnvp.gen", D=2)
    model.loss(torch.randn(64, 2) * 3)
    fresh = L.load(stdlib_dir() / "realnvp.gen", D=2)
    fresh.load_state_dict(model.state_dict())
    assert all(bool(m.initialized) for m in fresh.modules() if isinstance(m, ActNorm))
    x = torch.randn(10, 2)
    model.eval(), fresh.eval()
    with torch.no_grad():
        torch.testing.assert_close(fresh.log_prob(x), model.log_prob(x))


def test_invconv_flow_moves_to_double():
    model = L.load(_spec("invconv; actnorm")).double()
    (conv, _) = model.flow.layers
    assert isinstance(conv, InvConv) and conv.p.dtype == torch.float64
    with torch.no_grad():
        assert model.log_prob(torch.randn(4, 2, dtype=torch.float64)).dtype == torch.float64


def test_training_realnvp_on_moons_improves_w2(tmp_path):
    torch.manual_seed(0)
    model = L.load(
        _spec("repeat 4 { affine_coupling(net = MLP(hidden = [32, 32])); actnorm; reverse }")
    )
    data = load_dataset("moons", n=2000).x
    test = load_dataset("moons", n=1000, split="test").x
    gen = torch.Generator().manual_seed(0)
    before = w2(model.sample(1000, generator=gen), test)
    result = fit(
        model,
        data,
        steps=250,
        batch_size=128,
        lr=3e-3,
        out_dir=tmp_path,
        ema=None,
        progress=False,
        device="cpu",
    )
    model.eval()
    after = w2(model.sample(1000, generator=torch.Generator().manual_seed(0)), test)
    with torch.no_grad():
        nll = -float(model.log_prob(test).mean())
    assert after < 0.5 * before, (before, after)
    assert nll < 2.0 and result.loss < 2.2
