"""The diffusion back end: every stdlib spec compiles, trains a step and samples; the loss, score
and likelihood match closed forms for Gaussian data; guidance and ControlNet identities;
consistency-model boundary condition and sampling."""

from __future__ import annotations

import math

import pytest
import torch

from gendsl.errors import UsageError
from gendsl.lower import load
from gendsl.lower.diffusion_consistency import ConsistencyModel
from gendsl.lower.diffusion_core import DiffusionModel
from gendsl.lower.diffusion_guidance import (
    ClassifierFreeModel,
    ClassifierGuidedModel,
    ControlNetModel,
)
from gendsl.metrics import w2
from gendsl.resources import stdlib_dir

torch.set_num_threads(1)

SMALL_VP = """
model small_vp {
  data x : real[2]
  let beta(t) = 0.1 + 19.9 * t
  sde dx = -0.5 * beta(t) * x * dt + sqrt(beta(t)) * dw, t in [0, 1]
  net eps = MLP(hidden = [64, 64], time = fourier)
  predict eps = eps(x_t, t)
  loss dsm
  sample with dpm_solver(order = 2, steps = 20)
}
"""

# (spec, class, sample steps, expected NFE of that sample)
STDLIB = [
    ("vp_sde", DiffusionModel, None, 20),
    ("ve_sde", DiffusionModel, 6, 11),  # pc: 5 x (predictor + corrector) + denoise
    ("subvp_sde", DiffusionModel, None, 20),
    ("ddpm", DiffusionModel, 6, 6),
    ("cfg", ClassifierFreeModel, None, 20),
    ("classifier_guidance", ClassifierGuidedModel, None, 20),
    ("controlnet", ControlNetModel, None, 20),
    ("consistency_distillation", ConsistencyModel, None, 1),
    ("consistency_training", ConsistencyModel, None, 2),
]


def _stdlib(name: str, **sizes: int):
    return load(str(stdlib_dir() / f"{name}.gen"), **sizes)


@pytest.mark.parametrize(("name", "cls", "steps", "nfe"), STDLIB)
def test_stdlib_spec_trains_a_step_and_samples(name, cls, steps, nfe):
    torch.manual_seed(0)
    model = _stdlib(name, D=2, K=3)
    assert type(model) is cls
    if name == "consistency_distillation":
        model.set_teacher(_stdlib("vp_sde", D=2))
    x, y = torch.randn(16, 2), torch.randint(0, 3, (16,))
    loss = model.loss((x, y) if model.checked.conditional else x)
    assert loss.ndim == 0 and torch.isfinite(loss)
    loss.backward()
    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    assert trainable
    no_grad = [n for n, p in trainable if not n.startswith("target.") and p.grad is None]
    assert not no_grad, f"parameters without a gradient: {no_grad[:3]}"
    labels = torch.tensor([0, 1, 2, 0]) if model.checked.conditional else None
    out = model.sample(4, steps=steps, y=labels, generator=torch.Generator().manual_seed(1))
    assert out.shape == (4, 2) and torch.isfinite(out).all()
    assert model.last_nfe == nfe


def test_ddpm_chain_has_the_declared_betas():
    model = _stdlib("ddpm", D=2)
    expected = torch.linspace(1e-4, 0.02, 1000, dtype=torch.float64)
    torch.testing.assert_close(model.process.betas, expected)


# ------------------------------------------------------------------ closed forms for Gaussian data

MU = torch.tensor([0.5, -0.3])
SIGMA0 = 0.8


def _vp_marginal(t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """a(t), s(t) of the VP SDE with beta = 0.1 + 19.9 t, written out independently."""
    log_a = -0.25 * t**2 * 19.9 - 0.5 * t * 0.1
    return torch.exp(log_a), torch.sqrt(1 - torch.exp(2 * log_a))


class ExactGaussian(DiffusionModel):
    """The model with the exact ε of Gaussian data N(MU, SIGMA0² I), plus an optional offset."""

    offset = 0.0

    def net_output(self, x_t, t, cond):
        a, s = _vp_marginal(t)
        a, s = a[:, None], s[:, None]
        var = a**2 * SIGMA0**2 + s**2
        score = -(x_t - a * MU) / var
        return -s * score + self.offset


def _exact(offset: float = 0.0) -> ExactGaussian:
    base = load(SMALL_VP)
    model = ExactGaussian(base.checked, {})
    model.offset = offset
    return model


def test_dsm_loss_at_the_exact_score_is_the_closed_form_minimum():
    torch.manual_seed(0)
    x = MU + SIGMA0 * torch.randn(40000, 2)
    model = _exact()
    torch.manual_seed(1)
    optimum = float(model.loss(x))
    model.offset = 0.1
    torch.manual_seed(1)
    perturbed = float(model.loss(x))
    # E_t[ D a²σ0² / (a²σ0² + s²) ]: the irreducible error of predicting ε from x_t.
    t = torch.linspace(model.process.t_min, 1.0, 20001, dtype=torch.float64)
    a, s = _vp_marginal(t)
    expected = float((2 * a**2 * SIGMA0**2 / (a**2 * SIGMA0**2 + s**2)).mean())
    assert optimum == pytest.approx(expected, rel=0.03)
    assert perturbed == pytest.approx(optimum + 2 * 0.1**2, rel=0.03)
    assert perturbed > optimum


def test_log_prob_with_the_exact_score_is_the_gaussian_density():
    model = _exact()
    x = torch.tensor([[0.5, -0.3], [1.5, 0.2], [-0.7, -1.1]])
    a, s = _vp_marginal(torch.tensor(model.process.t_min))
    var = a**2 * SIGMA0**2 + s**2  # x is read as a sample of p_{t_min}
    expected = -0.5 * ((x - a * MU) ** 2).sum(1) / var - math.log(2 * math.pi * var)
    # tolerance: the prior N(0, s_T²) ignores the mean a_T MU (a_T = 0.0066) of p_T
    got = model.log_prob(x)
    torch.testing.assert_close(got, expected, atol=6e-3, rtol=0)
    bpd = model.bits_per_dim(x)
    torch.testing.assert_close(bpd, -expected / (2 * math.log(2)), atol=6e-3, rtol=0)
    hutchinson = model.log_prob(x.repeat(200, 1), trace="hutchinson")
    torch.testing.assert_close(hutchinson.reshape(200, 3).mean(0), expected, atol=0.05, rtol=0)


def test_sampling_with_an_exact_score_fn_reproduces_the_gaussian():
    model = load(SMALL_VP)
    exact = _exact()
    out = model.sample(
        4000,
        method="dpm_solver",
        steps=20,
        score_fn=lambda x, t: exact.score(x, t, {}),
        generator=torch.Generator().manual_seed(0),
    )
    assert model.last_nfe == 20
    torch.testing.assert_close(out.mean(0), MU, atol=0.05, rtol=0)
    torch.testing.assert_close(out.std(0), torch.full((2,), SIGMA0), atol=0.05, rtol=0)


def test_training_on_a_gaussian_mixture_brings_w2_down():
    torch.manual_seed(0)
    centres = torch.tensor([[2.0, 2.0], [-2.0, 2.0], [2.0, -2.0], [-2.0, -2.0]])

    def mixture(n: int) -> torch.Tensor:
        return centres[torch.randint(0, 4, (n,))] + 0.3 * torch.randn(n, 2)

    model = load(SMALL_VP)
    held_out = mixture(600)
    gen = torch.Generator().manual_seed(0)
    before = w2(model.sample(600, generator=gen), held_out)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(700):
        opt.zero_grad()
        model.loss(mixture(256)).backward()
        opt.step()
    after = w2(model.sample(600, generator=gen), held_out)
    assert after < 0.35 * before, (before, after)


# ------------------------------------------------------------------ guidance and ControlNet


def test_cfg_scale_zero_is_the_conditional_sampler_and_the_score_extrapolates():
    torch.manual_seed(0)
    model = _stdlib("cfg", D=2, K=3).eval()
    y = torch.tensor([0, 1, 2, 1])
    knobs = dict(method="ddim", steps=8)
    guided = model.sample(4, y=y, scale=0.0, generator=torch.Generator().manual_seed(3), **knobs)
    plain = model.sample(
        4,
        score_fn=lambda x, t: model.score(x, t, {"y": y}),
        generator=torch.Generator().manual_seed(3),
        **knobs,
    )
    torch.testing.assert_close(guided, plain, atol=1e-5, rtol=1e-5)
    x, t = torch.randn(4, 2), torch.full((4,), 0.5)
    w = 2.5
    s_c = model.score(x, t, {"y": y})
    s_u = model.score(x, t, {"y": torch.full_like(y, 3)})
    got = model.sampling_score_fn({"y": y}, scale=w)(x, t)
    torch.testing.assert_close(got, s_c + w * (s_c - s_u), atol=1e-5, rtol=1e-5)


def test_cfg_drops_labels_to_the_null_class_while_training():
    model = _stdlib("cfg", D=2, K=3).train()
    y = torch.zeros(20000, dtype=torch.long)
    seen = model.training_conditions({"x": torch.zeros(20000, 2), "y": y})["y"]
    assert set(seen.unique().tolist()) == {0, 3}
    assert float((seen == 3).float().mean()) == pytest.approx(0.1, abs=0.01)
    assert torch.equal(model.eval().training_conditions({"y": y})["y"], y)


def test_classifier_guidance_adds_a_multiple_of_the_classifier_gradient():
    torch.manual_seed(0)
    model = _stdlib("classifier_guidance", D=2, K=3)
    x, t, y = torch.randn(5, 2), torch.full((5,), 0.3), torch.tensor([0, 1, 2, 0, 1])
    plain = model.score(x, t, {})
    x_in = x.clone().requires_grad_(True)
    a_t, s_t = model.process.marginal(t)
    c_in = 1 / torch.sqrt(a_t**2 + s_t**2)  # σ_data = 1
    logits = model.nets["clf"](c_in[:, None] * x_in, t=t)
    log_p = torch.log_softmax(logits, -1)[torch.arange(5), y].sum()
    (grad,) = torch.autograd.grad(log_p, x_in)
    got = model.sampling_score_fn({"y": y}, scale=2.0)(x, t)
    torch.testing.assert_close(got, plain + 2.0 * grad, atol=1e-6, rtol=1e-5)


def test_controlnet_is_exactly_the_base_at_init_and_set_base_freezes_it():
    torch.manual_seed(0)
    model = _stdlib("controlnet", D=2, K=3)
    x, t, y = torch.randn(6, 2), torch.rand(6), torch.tensor([0, 1, 2, 0, 1, 2])
    base_only = model.net_output(x, t, {})
    assert torch.equal(model.net_output(x, t, {"y": y}), base_only)
    with torch.no_grad():
        for p in model.branch.zero_out.parameters():
            p.add_(0.1)
    assert not torch.allclose(model.net_output(x, t, {"y": y}), base_only)

    base = _stdlib("vp_sde", D=2)
    fresh = _stdlib("controlnet", D=2, K=3)
    fresh.set_base(base)
    torch.testing.assert_close(fresh.net_output(x, t, {"y": y}), base.net_output(x, t, {}))
    assert not any(p.requires_grad for p in fresh.nets["eps"].parameters())
    assert all(p.requires_grad for p in fresh.branch.parameters())


def test_controlnet_set_base_refuses_a_base_that_does_not_fit_and_copies_nothing():
    """load_state_dict copies the entries that fit before raising: the fit is checked first."""
    model = _stdlib("controlnet", D=2, K=3)
    narrow = load(SMALL_VP.replace("hidden = [64, 64]", "hidden = [8]"))
    kept = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(UsageError, match="the base run's network eps does not fit"):
        model.set_base(narrow)
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in kept.items())


# ------------------------------------------------------------------ consistency models


def test_consistency_boundary_condition_and_one_step_sampling():
    torch.manual_seed(0)
    model = _stdlib("consistency_training", D=2)
    y = torch.randn(7, 2)
    sigma_min = torch.full((7,), model.sigma_min)
    torch.testing.assert_close(model.f_theta(y, sigma_min), y, atol=1e-6, rtol=0)
    assert not torch.allclose(model.f_theta(y, 10 * sigma_min), y)
    one = model.sample(5, method="onestep", generator=torch.Generator().manual_seed(0))
    assert one.shape == (5, 2) and model.last_nfe == 1
    # one step from σ_max: f(σ_max z, σ_max) with the generator's first draw z
    z = torch.randn(5, 2, generator=torch.Generator().manual_seed(0))
    sigma_max = torch.full((5,), model.sigma_max)
    torch.testing.assert_close(one, model.f_theta(model.sigma_max * z, sigma_max))
    many = model.sample(5, method="multistep", steps=3)
    assert many.shape == (5, 2) and model.last_nfe == 3


def test_consistency_target_network_is_an_ema_of_the_student():
    model = _stdlib("consistency_training", D=2).train()
    with torch.no_grad():
        for p in model.nets["f"].parameters():
            p.add_(1.0)
    before = [p.clone() for p in model.target.parameters()]
    model.loss(torch.randn(8, 2))
    mu = model.target_decay
    pairs = zip(model.target.parameters(), model.nets["f"].parameters(), strict=True)
    for old, (new, p) in zip(before, pairs, strict=True):
        torch.testing.assert_close(new, mu * old + (1 - mu) * p)


def test_consistency_distillation_needs_its_teacher():
    model = _stdlib("consistency_distillation", D=2)
    with pytest.raises(UsageError, match="set_teacher"):
        model.loss(torch.randn(4, 2))


STUDENT = (
    SMALL_VP
    + """
model student extends small_vp {
  predict x0 = consistency(eps, sigma_data = 0.5)
  loss consistency(teacher = small_vp, steps = 10, init = teacher)
  sample with onestep
}
"""
)


def test_consistency_init_teacher_starts_as_the_teachers_one_step_denoiser():
    """f(y, σ) = c_skip(σ) y + (σ - σ_min)/σ (D(y, σ) - σ_d²/(σ² + σ_d²) y) with D the teacher's
    Tweedie denoiser (x_t + s_t² ŝ(x_t, t)) / a_t at t(σ), x_t = a_t y, computed here from the
    teacher's own score; the target network starts equal; f(y, σ_min) = y exactly."""
    from gendsl.processes.edm import t_of_sigma

    torch.manual_seed(0)
    teacher = load(SMALL_VP).double()
    with torch.no_grad():  # a teacher that is not the initialisation
        for p in teacher.parameters():
            p.add_(0.1 * torch.randn_like(p))
    student = load(STUDENT, model="student").double()
    assert student.start is not None and student.start.kind == "eps"
    student.set_teacher(teacher)
    y = 3 * torch.randn(5, 2, dtype=torch.float64)
    sigma = torch.tensor([0.05, 0.3, 1.0, 8.0, student.sigma_max], dtype=torch.float64)
    t = t_of_sigma(student.process, sigma)
    a, s = (v[:, None] for v in student.process.marginal(t))
    x_t = a * y
    denoised = (x_t + s**2 * teacher.score(x_t, t, {})) / a
    sd, lo = 0.5, student.sigma_min
    c_skip = (sd**2 / ((sigma - lo) ** 2 + sd**2))[:, None]
    edm_skip = (sd**2 / (sigma**2 + sd**2))[:, None]
    expected = c_skip * y + ((sigma - lo) / sigma)[:, None] * (denoised - edm_skip * y)
    with torch.no_grad():
        torch.testing.assert_close(student.f_theta(y, sigma), expected, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(student.f_theta(y, sigma, target=True), expected)
        at_min = student.f_theta(y, torch.full((5,), lo, dtype=torch.float64))
    torch.testing.assert_close(at_min, y, rtol=0, atol=1e-12)
    # far from σ_min the student is (almost) the teacher's denoiser: (σ - σ_min)/σ ≈ 1
    gap = (expected[-1] - denoised[-1]).abs().max()
    assert gap < 0.01 * denoised[-1].abs().max()


def test_consistency_init_teacher_trains_and_its_run_samples_without_the_teacher(tmp_path, capsys):
    """Through the CLI: the student starts from the teacher run's weights and trains its own
    copy (the teacher run is untouched); its run is rebuilt from the stored spec (the teacher's
    ``predict`` included) and samples without the teacher."""
    from gendsl.cli import main
    from gendsl.lower.trained import compile_run
    from gendsl.trained import open_trained

    spec = tmp_path / "student.gen"
    spec.write_text(STUDENT)
    common = ["--data", "moons", "--batch-size", "8", "--no-progress"]
    teacher_run, student_run = tmp_path / "teacher", tmp_path / "student"
    argv = ["train", str(spec), "--model", "small_vp", "--steps", "20"]
    assert main([*argv, *common, "--out", str(teacher_run)]) == 0, capsys.readouterr().err
    argv = ["train", str(spec), "--model", "student", "--steps", "3"]
    argv += ["--teacher", str(teacher_run)]
    assert main([*argv, *common, "--out", str(student_run)]) == 0, capsys.readouterr().err
    teacher = compile_run(open_trained(teacher_run))
    student = compile_run(open_trained(student_run))
    assert isinstance(student, ConsistencyModel) and student.start == teacher.checked.predict
    other = load(SMALL_VP.replace("hidden = [64, 64]", "hidden = [8]"))
    kept = {k: v.clone() for k, v in student.state_dict().items()}
    with pytest.raises(UsageError, match="init = teacher: the teacher has no network eps of"):
        student.set_teacher(other)
    assert all(torch.equal(v, student.state_dict()[k]) for k, v in kept.items())  # untouched
    before, after = teacher.nets["eps"].state_dict(), student.nets["eps"].state_dict()
    assert before.keys() == after.keys()
    # Adam's first steps move every weight by about lr: started at the teacher, not equal to it
    gaps = [float((after[k] - before[k]).abs().max()) for k in before]
    assert 0 < max(gaps) < 0.05
    x = student.sample(3, generator=torch.Generator().manual_seed(0))
    assert x.shape == (3, 2) and torch.isfinite(x).all()


def test_declared_sampler_leaves_unset_options_to_the_measured_defaults():
    """``sample with dpm_solver(steps = 20)`` must get the schedule tuned in gendsl.sampling
    (the checker fills ``schedule = auto``), and DPM-Solver++ (data prediction) by default."""
    from gendsl.analysis import load_checked
    from gendsl.lower import compile_model
    from gendsl.resources import stdlib_path
    from gendsl.sampling import DEFAULTS

    model = compile_model(load_checked(str(stdlib_path("vp_sde"))), bindings={"D": 2})
    method, knobs = model.sampler_settings(None, None, {})
    assert method == "dpm_solver"
    assert "schedule" not in knobs and DEFAULTS["dpm_solver"][1] == "truncated_log_snr"
    assert knobs["steps"] == 20 and knobs["predict"] == "data"
    _, explicit = model.sampler_settings(None, None, {"schedule": "karras"})
    assert explicit["schedule"] == "karras"


_IMAGE_SDE = """model m {{
  data x : {data}
  let beta(t) = 0.1 + (20 - 0.1) * t
  sde dx = -0.5 * beta(t) * x * dt + sqrt(beta(t)) * dw, t in [0, 1]
  net eps = {net}
  predict eps = eps(x_t, t)
  loss dsm
  sample with dpm_solver(steps = 5{clip})
}}"""


def test_an_image_model_clips_its_denoised_estimate_unless_told_not_to():
    """Untrained, the UNet's x̂0 leaves [0, 1]: clipped by default for image data (every step
    moves toward an estimate in [0, 1], and so does the last), unclipped with clip = false."""
    image = {"data": "image[1, 8, 8]", "net": "UNet(channels = [8, 8])"}
    torch.manual_seed(0)
    default = load(_IMAGE_SDE.format(**image, clip="")).eval()
    off = load(_IMAGE_SDE.format(**image, clip=", clip = false")).eval()
    off.load_state_dict(default.state_dict())
    x = default.sample(16, generator=torch.Generator().manual_seed(1))
    y = off.sample(16, generator=torch.Generator().manual_seed(1))
    assert float(x.min()) >= -1e-6 and float(x.max()) <= 1 + 1e-6
    assert float(y.min()) < -1 or float(y.max()) > 2
    z = off.sample(16, generator=torch.Generator().manual_seed(1), clip=True)
    torch.testing.assert_close(z, x)


def test_clip_on_data_that_is_not_an_image_is_refused():
    spec = _IMAGE_SDE.format(data="real[2]", net="MLP(hidden = [8])", clip="")
    model = load(spec).eval()
    with pytest.raises(
        UsageError,
        match=r"^clip = true needs image data \(values in \[0, 1\]\); "
        r"x is real$",
    ):
        model.sample(4, clip=True)
    assert model.sample(4, clip=False).shape == (4, 2)
