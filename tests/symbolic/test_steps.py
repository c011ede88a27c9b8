"""Stepwise derivations (``gendsl.symbolic.steps``): every stdlib spec's steps check out, a
wrong identity or a wrong derived result is caught and named, and the formats hold together."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from gendsl.analysis.check import check_file
from gendsl.symbolic.derivation import derive_fresh
from gendsl.symbolic.derived import render
from gendsl.symbolic.steps import (
    FAMILIES,
    CheckFailed,
    Step,
    Steps,
    Topic,
    fresh_steps,
    render_steps,
    run_checks,
    stepwise,
)
from gendsl.symbolic.steps.model import Check, binding

ROOT = Path(__file__).resolve().parents[2]
STDLIB = sorted((ROOT / "stdlib").glob("*.gen"))
EXAMPLES = sorted((ROOT / "examples").glob("*.gen"))


def _model(name: str):
    return check_file(ROOT / "stdlib" / f"{name}.gen")[-1]


@pytest.mark.parametrize(
    "spec", STDLIB + EXAMPLES, ids=[f"{p.parent.name}/{p.stem}" for p in STDLIB + EXAMPLES]
)
def test_every_stdlib_and_example_spec_has_checked_steps(spec: Path):
    model = check_file(spec)[-1]
    steps = stepwise(model)  # raises CheckFailed at the first failing step
    outcomes = steps.outcomes or []
    assert len(outcomes) == len(steps.all_steps())
    assert model.family in FAMILIES
    assert any(o.kind in ("sympy", "numeric") for o in outcomes), model.name
    for _, step in steps.all_steps():  # each claim's LaTeX has balanced braces
        depth = 0
        for ch in step.latex.replace(r"\{", "").replace(r"\}", ""):
            depth += (ch == "{") - (ch == "}")
            assert depth >= 0, step.latex
        assert depth == 0, step.latex


def test_vp_sde_shows_moment_odes_fokker_planck_reverse_sde_and_tweedie():
    text = render_steps(derive_fresh(_model("vp_sde")), stepwise(_model("vp_sde")))
    for claim in (
        "dm/dt = f(t) m,  dv/dt = 2 f(t) v + g(t)^2",
        "a(t) = exp(-t*(199*t + 2)/40), s(t)^2 = 1 - exp(-199*t^2/20 - t/10)",
        "dp/dt = -d/dx[f(t) x p] + 1/2 g(t)^2 d^2p/dx^2",
        "dx = [f(t) x - g(t)^2 grad_x log p_t(x)] dt + g(t) dw_bar",
        "E[x_0 | x_t] = (x_t + s(t)^2 grad_x log p_t(x_t)) / a(t)",
    ):
        assert claim in text, claim
    assert text.count("check passed") == 8


def test_consistency_models_show_their_function_and_the_teacher_start_when_declared():
    training = [t.title for t in fresh_steps(_model("consistency_training")).topics]
    assert training[-1] == "the consistency function"
    topic = fresh_steps(_model("consistency_distillation")).topics[-1]
    assert len(topic.steps) == 2 and "distillation target" in topic.steps[1].claim
    example = check_file(ROOT / "examples" / "consistency_distillation_fontdigits.gen")[-1]
    steps = fresh_steps(example).topics[-1].steps
    assert len(steps) == 3
    assert steps[2].claim.startswith("init = teacher: v starts as vp_sde_fontdigits_v's network")
    assert steps[2].check is not None and "cm_used" in steps[2].check.source


def test_ddpm_shows_the_posterior_for_its_own_schedule():
    text = render_steps(derive_fresh(_model("ddpm")), stepwise(_model("ddpm")))
    assert "beta_k = 199*k/9990000 + 2/24975" in text
    # Ho et al. 2020, eq. 7 at k = 2 with beta_1 = 1e-4, beta_2 = 1e-4 + 0.0199/999
    b1, b2 = 1e-4, 1e-4 + 0.0199 / 999
    tilde2 = b1 / (1 - (1 - b1) * (1 - b2)) * b2
    shown = re.search(r"beta_tilde_k at k = 2: ([0-9.e-]+)", text)
    assert shown and float(shown.group(1)) == pytest.approx(tilde2, rel=1e-5)


def test_latent_models_show_both_elbo_forms_the_kl_and_iwae():
    vae = render_steps(derive_fresh(_model("vae")), stepwise(_model("vae")))
    assert "ELBO = E_q[log p(x | z)] - KL(q(z | x) || p(z))" in vae
    assert "KL(N(m1, s1^2) || N(m2, s2^2)) = log(s2/s1)" in vae
    iwae = render_steps(derive_fresh(_model("iwae")), stepwise(_model("iwae")))
    assert "ELBO = L_1 <= L_16 <= L_32 <= log p(x)" in iwae


def test_gan_and_wgan_show_the_optimal_critic_and_the_kr_dual():
    gan = render_steps(derive_fresh(_model("gan")), stepwise(_model("gan")))
    assert "D*(x) = p(x) / (p(x) + q(x))" in gan and "-log 4 + 2 JS(p || q)" in gan
    wgan = render_steps(derive_fresh(_model("wgan")), stepwise(_model("wgan")))
    assert "sup_(||f||_L <= 1) E_p f - E_q f" in wgan and "POT emd2 W1" in wgan


def test_a_wrong_identity_is_caught_and_named():
    steps = fresh_steps(_model("vp_sde"), check=False)
    wrong = "assert sp.simplify(sp.diff(a, t) - 2 * f * a) == 0, 'da/dt != 2 f a'"
    steps.topics.append(
        Topic("injected", [Step("da/dt = 2 f a", "", "wrong", "", Check("sympy", wrong))])
    )
    with pytest.raises(
        CheckFailed,
        match=r"the step 'da/dt = 2 f a' \(injected\) fails its sympy check: da/dt != 2 f a",
    ):
        run_checks(steps)


def test_a_wrong_kernel_variance_fails_the_solution_step():
    steps = fresh_steps(_model("vp_sde"), check=False)
    import sympy as sp

    i = next(i for i, line in enumerate(steps.setup) if line.startswith("s2 = "))
    t = sp.Symbol("t", nonnegative=True)
    steps.setup[i] = binding("s2", 1 - sp.exp(-t))  # not the VP variance
    with pytest.raises(CheckFailed, match=r"the step 'm\(t\) = a\(t\) x_0, v\(t\) = s\(t\)\^2"):
        run_checks(steps)


def test_a_wrong_printed_posterior_value_is_caught():
    steps = fresh_steps(_model("ddpm"), check=False)
    i = next(i for i, line in enumerate(steps.setup) if line.startswith("shown = "))
    steps.setup[i] = steps.setup[i].replace("5.45319e-05", "5.5e-05")
    with pytest.raises(CheckFailed, match="for this schedule: beta_tilde_k"):
        run_checks(steps)


def test_cached_steps_render_as_the_fresh_ones():
    model = _model("ddpm")
    derivation = derive_fresh(model)
    first, again = stepwise(model), stepwise(model)
    fresh = fresh_steps(model)
    for fmt in ("text", "markdown", "latex"):
        assert render_steps(derivation, again, fmt) == render_steps(derivation, fresh, fmt)
    assert render_steps(derivation, first) == render_steps(derivation, fresh)


def test_formats_start_with_the_brief_summary_and_latex_is_standalone():
    model = _model("gan")
    derivation, steps = derive_fresh(model), stepwise(model)
    for fmt in ("text", "markdown"):
        assert render_steps(derivation, steps, fmt).startswith(render(derivation, fmt).rstrip())
    latex = render_steps(derivation, steps, "latex")
    assert latex.startswith(r"\documentclass{article}") and latex.rstrip().endswith(
        r"\end{document}"
    )
    assert latex.count(r"\begin{") == latex.count(r"\end{")
    assert render(derivation, "latex").rstrip() in latex


def test_a_model_without_steps_says_so():
    model = _model("realnvp")
    empty = Steps(model.name, "flow", [], [], [])
    text = render_steps(derive_fresh(model), empty)
    assert text.endswith("no stepwise derivation for the flow family yet: the summary is all\n")


def test_flows_matching_and_energy_show_their_steps():
    glow = render_steps(derive_fresh(_model("glow")), stepwise(_model("glow")))
    assert "log|det W| = sum log|s|" in glow and "log|det J| = sum s(x_a)" in glow
    ffjord = render_steps(derive_fresh(_model("ffjord")), stepwise(_model("ffjord")))
    assert "d log p(z(t))/dt = -tr(dv/dz)" in ffjord
    fm = render_steps(derive_fresh(_model("ot_cfm")), stepwise(_model("ot_cfm")))
    assert "u_t = d x_t / dt = -x0 + x1" in fm and "the conditional loss has the marginal" in fm
    ebm = render_steps(derive_fresh(_model("ebm")), stepwise(_model("ebm")))
    assert "x' = x - 0.01 grad E(x) + 0.005 xi is the Euler step of exp(-E/T), T = 0.00125" in ebm
    dsm = render_steps(derive_fresh(_model("dsm")), stepwise(_model("dsm")))
    assert "equals E ||s(x~) - grad log q(x~)||^2 up to a constant" in dsm


def test_an_ot_gap_adds_its_certified_step(tmp_path):
    """``ot(exact, gap = 0.02)``: a step states the certificate and checks the certified solver
    against POT's exact cost; the exact coupling has no such step."""
    spec = tmp_path / "gap.gen"
    spec.write_text(
        'import "stdlib/ot_cfm.gen"\nmodel m extends ot_cfm {\n'
        "  couple x0, x1 by ot(exact, gap = 0.02)\n}\n"
    )
    model = check_file(spec)[-1]
    text = render_steps(derive_fresh(model), stepwise(model))
    assert "gap = 0.02: each minibatch's pairing stops once a weak-duality lower bound" in text
    assert re.search(r"check: numeric check passed: certified: cost [0-9.]+, LB [0-9.]+ <= OPT "
                     r"[0-9.]+; gap [0-9.e+-]+ <= 0.02", text)  # fmt: skip
    exact = render_steps(derive_fresh(_model("ot_cfm")), stepwise(_model("ot_cfm")))
    assert "weak-duality" not in exact


@pytest.mark.parametrize("name", ["ddpm", "vp_sde"])
def test_the_documented_stepwise_output_is_what_derive_prints(name: str):
    docs = (ROOT / "docs" / "derivations.md").read_text()
    section = docs[docs.index("## 8. Step by step") :]
    blocks = re.findall(r"```text\n(.*?)```", section, re.S)
    model = _model(name)
    printed = render_steps(derive_fresh(model), stepwise(model))
    assert printed in blocks


def test_a_check_that_rebinds_a_setup_name_is_refused():
    steps = fresh_steps(_model("ddpm"), check=False)
    steps.topics.append(Topic("injected", [Step("c", "", "", "", Check("sympy", "betas = 0"))]))
    with pytest.raises(CheckFailed, match="the check of the step 'c' rebinds the setup's betas"):
        run_checks(steps)


NO_CLOSED_FORM = """\
model q {
  data x : real[D]
  let beta(t) = 0.1 + exp(t^2)
  sde dx = -0.5 * beta(t) * x * dt + sqrt(beta(t)) * dw, t in [0, 1]
  net eps = MLP(hidden = [16])
  predict eps = eps(x_t, t)
  loss dsm
}
"""


def test_a_kernel_without_closed_form_is_checked_against_the_moment_odes():
    from gendsl.analysis.check import check_text

    model = check_text(NO_CLOSED_FORM, "q.gen")[-1]
    steps = fresh_steps(model)
    claims = [s.claim for _, s in steps.all_steps()]
    assert any("(no closed form: quadrature)" in c for c in claims)
    i = next(i for i, line in enumerate(steps.setup) if line.startswith("a_gendsl = "))
    steps.setup[i] = steps.setup[i].replace("np.array([", "1.001 * np.array([")
    with pytest.raises(CheckFailed, match=r"no closed form: quadrature\)' .* numeric check"):
        run_checks(steps)


def test_markdown_shows_claims_as_code_and_escapes_prose():
    model = _model("gan")
    md = render_steps(derive_fresh(model), stepwise(model), "markdown")
    assert "- `D*(x) = p(x) / (p(x) + q(x))`" in md
    assert "$$D^*(x) = \\frac{p(x)}{p(x)+q(x)}$$" in md
    ddpm = render_steps(derive_fresh(_model("ddpm")), stepwise(_model("ddpm")), "markdown")
    assert "complete the square in x\\_(k-1)" in ddpm


def test_unchecked_steps_say_so():
    model = _model("ebm")
    text = render_steps(derive_fresh(model), fresh_steps(model, check=False))
    assert "check: not run" in text and "check passed" not in text
