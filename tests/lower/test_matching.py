"""The matching back end: every stdlib spec compiles, has a finite loss with gradients on every
parameter, samples the right shape with the predicted NFE; with the analytic optimal velocity
for Gaussian -> Gaussian, sampling and the likelihood match closed forms; a short training run
lowers W2; reflow straightens a curved flow."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from gendsl import sampler_registry
from gendsl.errors import UsageError
from gendsl.lower import load
from gendsl.lower.matching import MatchingModel, ReflowModel
from gendsl.metrics import w2
from gendsl.objectives.couplings import EntropicOT, ExactOT, Independent, SchrodingerBridge
from gendsl.resources import stdlib_dir
from gendsl.train import fit

torch.set_num_threads(1)



def _registry_nfe(solver: str, steps: int | None) -> int | None:
    """Velocity evaluations the sampler registry counts for ``steps`` steps of ``solver``."""
    decl = sampler_registry.declared("matching", "ode")
    return sampler_registry.nfe(decl, steps, {"solver": solver})


# (spec, coupling class, declared solver, declared steps)
STDLIB = [
    ("flow_matching", Independent, "dopri5", None),
    ("ot_cfm", ExactOT, "dopri5", None),
    ("sb_cfm", SchrodingerBridge, "dopri5", None),
    ("rectified_flow", Independent, "euler", 10),
    ("stochastic_interpolant", Independent, "dopri5", None),
]


def spec(body: str, couple: str = "independent", sample: str = "ode(method = rk4, steps = 20)"):
    return f"""
model m {{
  data x1 : real[D]
  latent x0 : real[D]
  x0 ~ Normal(0, 1)
  couple x0, x1 by {couple}
  path x_t = {body}
  net v = MLP(hidden = [64, 64], time = concat)
  predict velocity = v(x_t, t)
  loss flow_matching
  sample with {sample}
}}
"""


@pytest.mark.parametrize(("name", "coupling", "solver", "steps"), STDLIB)
def test_stdlib_spec_compiles_trains_and_samples(name, coupling, solver, steps):
    torch.manual_seed(0)
    model = load(str(stdlib_dir() / f"{name}.gen"), D=2)
    assert isinstance(model, MatchingModel) and type(model.coupling) is coupling
    loss = model.loss(torch.randn(32, 2) + 2.0)
    assert loss.ndim == 0 and torch.isfinite(loss)
    loss.backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), pname
        assert p.grad.abs().sum() > 0, pname
    x = model.sample(7, generator=torch.Generator().manual_seed(1), steps=steps or 5)
    assert x.shape == (7, 2) and torch.isfinite(x).all()
    assert model.solver_settings(None, None, {})["solver"] == solver
    if solver == "dopri5":  # adaptive: steps are ignored, at least one step of 6 stages
        assert model.last_nfe >= 7 and _registry_nfe(solver, steps) is None
    else:
        assert model.last_nfe == steps == _registry_nfe(solver, steps)


def test_coupling_options_reach_the_coupling():
    sink = load(spec("(1 - t) * x0 + t * x1", "ot(sinkhorn, reg = 0.2)"), D=2)
    assert type(sink.coupling) is EntropicOT and sink.coupling.reg == pytest.approx(0.2)
    sb = load(str(stdlib_dir() / "sb_cfm.gen"), D=2)
    assert sb.coupling.sigma == pytest.approx(0.5) and sb.coupling.reg == pytest.approx(0.5)


def test_ot_coupling_pairs_minimise_cost_inside_the_loss():
    model = load(spec("(1 - t) * x0 + t * x1", "ot(exact)"), D=2)
    g = torch.Generator().manual_seed(0)
    x0, x1 = torch.randn(16, 2, generator=g), torch.randn(16, 2, generator=g) + 3
    a, b, _ = model.couple(x0, x1, {})
    shuffled = torch.randperm(16, generator=g)
    assert ((a - b) ** 2).sum() <= ((x0 - x1[shuffled]) ** 2).sum()
    assert sorted(b[:, 0].tolist()) == sorted(x1[:, 0].tolist())


# --------------------------------------------------------------- Gaussian closed forms

M, S = torch.tensor([1.5, -1.0]), torch.tensor([0.4, 0.8])


class OptimalVelocity(nn.Module):
    """E[x1 - x0 | x_t = x] for x_t = (1 - t) x0 + t x1, x0 ~ N(0, I), x1 ~ N(M, diag S²)."""

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        t = t.reshape(-1, 1).to(x.dtype)
        m, s = M.to(x.dtype), S.to(x.dtype)
        V = (1 - t) ** 2 + t**2 * s**2
        return m + (t * s**2 - (1 - t)) / V * (x - t * m)


def optimal_model(sample: str = "ode(method = rk4, steps = 20)") -> MatchingModel:
    model = load(spec("(1 - t) * x0 + t * x1", sample=sample), D=2)
    model.nets["v"] = OptimalVelocity()
    return model


@pytest.mark.parametrize("method", ["dopri5", "rk4", "heun"])
def test_optimal_velocity_transports_source_to_target(method):
    model = optimal_model()
    x = model.sample(4000, method=method, steps=10, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(x.mean(0), M, atol=0.05)
    assert torch.allclose(x.std(0), S, atol=0.03)
    if method != "dopri5":
        assert model.last_nfe == {"rk4": 4, "heun": 2}[method] * 10


def test_log_prob_matches_the_target_density():
    model = optimal_model()
    x = M + S * torch.randn(50, 2, generator=torch.Generator().manual_seed(1))
    exact = torch.distributions.Normal(M, S).log_prob(x).sum(1)
    torch.testing.assert_close(model.log_prob(x), exact, atol=2e-4, rtol=0)
    # the Jacobian is diagonal, so Hutchinson's Rademacher estimate is exact too
    hutch = model.log_prob(x, trace="hutchinson", generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(hutch, exact, atol=2e-4, rtol=0)
    bpd = model.bits_per_dim(x)
    torch.testing.assert_close(bpd, -exact / (2 * math.log(2)), atol=2e-4, rtol=0)


def test_log_prob_works_under_no_grad_and_rejects_bad_options():
    model = optimal_model()
    with torch.no_grad():
        assert torch.isfinite(model.log_prob(torch.zeros(3, 2))).all()
    with pytest.raises(UsageError, match="unknown ODE method 'leapfrog'"):
        model.sample(3, method="leapfrog")
    with pytest.raises(UsageError, match="trace must be one of exact, hutchinson; got 'x'"):
        model.log_prob(torch.zeros(3, 2), trace="x")


# --------------------------------------------------------------- training


def test_short_training_run_lowers_w2(tmp_path):
    from gendsl.data import load_dataset

    data = load_dataset("moons", n=3000, seed=0).x.float()
    model = load(spec("(1 - t) * x0 + t * x1", sample="ode(method = euler, steps = 20)"), D=2)
    g = torch.Generator().manual_seed(0)
    ref = data[:600]
    before = w2(model.sample(600, generator=g), ref)
    fit(model, data, steps=400, batch_size=256, lr=2e-3, out_dir=tmp_path, ema=None,
        progress=False, log_every=400, checkpoint_every=400)  # fmt: skip
    model.eval()
    after = w2(model.sample(600, generator=g), ref)
    assert after < 0.5 * before and after < 0.5, (before, after)


class Rotation(nn.Module):
    """v = (π/2) J x: a quarter turn over [0, 1], a strongly curved flow."""

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return (math.pi / 2) * torch.stack([-x[:, 1], x[:, 0]], dim=1)


def test_reflow_straightens_a_curved_flow():
    torch.manual_seed(0)
    previous = load(spec("(1 - t) * x0 + t * x1"), D=2)
    previous.nets["v"] = Rotation()
    text = spec("(1 - t) * x0 + t * x1", 'reflow(previous = "unused")')
    model = load(text, D=2)
    assert isinstance(model, ReflowModel)
    model.set_previous(previous)
    x0 = torch.randn(8, 2)
    a, b, _ = model.couple(x0, torch.zeros(8, 2), {})
    assert torch.equal(a, x0)
    torch.testing.assert_close(b, previous.transport(x0))
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(400):
        opt.zero_grad()
        model.loss(torch.zeros(128, 2)).backward()
        opt.step()
    g = torch.Generator().manual_seed(1)
    curved = previous.straightness(2000, steps=50, generator=g)
    straight = model.straightness(2000, steps=50, generator=g)
    assert curved > 0.8 and straight < 0.1 * curved, (curved, straight)


def test_reflow_opens_the_previous_run(tmp_path):
    first = load(str(stdlib_dir() / "rectified_flow.gen"), D=2)
    fit(first, torch.randn(64, 2), steps=2, batch_size=16, lr=1e-3, out_dir=tmp_path,
        progress=False, spec_text=first.spec_text, config={"bindings": {"D": 2}})  # fmt: skip
    model = load(spec("(1 - t) * x0 + t * x1", f'reflow(previous = "{tmp_path}")'), D=2)
    loss = model.loss(torch.zeros(16, 2))
    assert torch.isfinite(loss)
    assert model.previous().spec_text == first.spec_text
    assert not any(k.startswith("_previous") for k in model.state_dict())
    missing = load(spec("(1 - t) * x0 + t * x1", "reflow"), D=2)
    with pytest.raises(UsageError, match="reflow needs previous"):
        missing.loss(torch.zeros(4, 2))


@pytest.mark.parametrize(
    ("source", "mean", "sd"),
    [("Normal(2, 3)", 2.0, 3.0), ("Uniform(-1, 3)", 1.0, 4 / 12**0.5)],
)
def test_training_source_draws_have_the_declared_moments(source, mean, sd):
    """The training draw (no generator: μ + σ ε for a scalar Normal, the distribution's sampler
    otherwise) and the seeded draw both have the source's mean and standard deviation, within 5
    standard errors of 20000 draws (the sample sd's standard error is about σ/√(2n) or less)."""
    model = load(spec("(1 - t) * x0 + t * x1").replace("x0 ~ Normal(0, 1)", f"x0 ~ {source}"), D=2)
    assert (model.normal_source is not None) == source.startswith("Normal")
    torch.manual_seed(0)
    for x in (model.draw_source(20000), model.draw_source(20000, generator=torch.Generator())):
        assert x.shape == (20000, 2)
        x = x[:, 0]
        assert abs(float(x.mean()) - mean) < 5 * sd / 20000**0.5
        assert abs(float(x.std()) - sd) < 5 * sd / (2 * 20000) ** 0.5


def test_a_path_without_noise_skips_the_noise_term_exactly():
    """For flow_matching (γ ≡ 0) the noiseless path gives the same x_t and u_t as the general
    affine path for any w; a path with noise keeps the general one."""
    from gendsl.objectives.flow_matching import AffinePath
    from gendsl.symbolic import torch_fns

    model = load(str(stdlib_dir() / "flow_matching.gen"), D=2)
    assert model.noiseless and not load(str(stdlib_dir() / "ot_cfm.gen"), D=2).noiseless
    general = AffinePath(**torch_fns(model.kernel))
    g = torch.Generator().manual_seed(0)
    x0, x1, w = (torch.randn(64, 2, generator=g) for _ in range(3))
    t = torch.rand(64, generator=g)
    torch.testing.assert_close(model.path.sample_xt(x0, x1, t, w), general.sample_xt(x0, x1, t, w))
    torch.testing.assert_close(model.path.target(x0, x1, t, w), general.target(x0, x1, t, w))


@pytest.mark.parametrize(
    "name", ["flow_matching", "ot_cfm", "sb_cfm", "rectified_flow", "stochastic_interpolant"]
)
def test_path_coefficients_are_numbers_where_constant_and_agree_with_the_closed_forms(name):
    """Constant coefficients become numbers (read once), the rest functions of t; at any t
    each gives the value of the stored closed form's torch function, and the path's x_t and
    u_t are α x0 + β x1 + γ w and α' x0 + β' x1 + γ' w with those values."""
    from gendsl.lower.matching import path_coefficients
    from gendsl.symbolic import torch_fns

    model = load(str(stdlib_dir() / f"{name}.gen"), D=2)
    fns, coefficients = torch_fns(model.kernel), path_coefficients(model.kernel)
    g = torch.Generator().manual_seed(0)
    t = 0.01 + 0.98 * torch.rand(64, generator=g, dtype=torch.float64)
    for key, c in coefficients.items():
        constant = "t" not in model.kernel.exprs[key]
        assert callable(c) is not constant, key
        value = c(t) if callable(c) else torch.full_like(t, c)
        torch.testing.assert_close(value, fns[key](t), rtol=1e-15, atol=1e-15)
    x0, x1, w = (torch.randn(64, 2, generator=g, dtype=torch.float64) for _ in range(3))
    a, b, c, da, db, dc = (
        fns[k](t)[:, None] for k in ("alpha", "beta", "gamma", "d_alpha", "d_beta", "d_gamma")
    )
    x_t, u_t = model.path.xt_and_target(x0, x1, t, w)
    torch.testing.assert_close(x_t, a * x0 + b * x1 + c * w, rtol=1e-15, atol=1e-15)
    torch.testing.assert_close(u_t, da * x0 + db * x1 + dc * w, rtol=1e-15, atol=1e-15)
