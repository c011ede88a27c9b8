"""derive/render on checked stdlib models (closed forms checked numerically) and validate."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import sympy as sp

from gendsl.analysis.check import check_file, check_text
from gendsl.errors import SpecErrors
from gendsl.resources import stdlib_dir
from gendsl.symbolic import derive, render, validate


def _checked(name: str):
    return check_file(stdlib_dir() / name)[-1]


def test_vp_derivation_has_the_known_kernel():
    d = derive(_checked("vp_sde.gen"))
    k = d.kernel
    t = np.linspace(0, 1, 21)
    b0, b1 = 0.1, 20.0
    a = np.exp(-(t**2) * (b1 - b0) / 4 - t * b0 / 2)
    np.testing.assert_allclose(sp.lambdify(k.t, k.a)(t), a, rtol=1e-12)
    np.testing.assert_allclose(sp.lambdify(k.t, k.s2)(t), 1 - a**2, rtol=1e-10, atol=1e-14)
    text = render(d)
    assert "VP SDE" in text and "reverse SDE" in text and "probability-flow ODE" in text
    # the printed a(t) is the expression checked above
    line = next(s for s in text.splitlines() if s.startswith("mean scale"))
    printed = sp.sympify(line.split("=")[-1].replace("^", "**"), locals={"t": k.t})
    np.testing.assert_allclose(sp.lambdify(k.t, printed)(t), a, rtol=1e-12)
    latex = render(d, "latex")
    assert latex.count(r"\begin{align*}") == 1 and r"\frac{t \left(199 t + 2\right)}{40}" in latex


@pytest.mark.parametrize(
    ("name", "family", "phrase"),
    [
        ("ddpm.gen", "diffusion", "L_simple"),
        ("flow_matching.gen", "matching", "u_t = d x_t / dt"),
        ("vae.gen", "latent", "ELBO"),
        ("iwae.gen", "latent", "IWAE"),
        ("gan.gen", "adversarial", "D*(x)"),
        ("wgan.gen", "adversarial", "Kantorovich"),
        ("ebm.gen", "energy", "CD gradient"),
        ("realnvp.gen", "flow", "log|det J"),
    ],
)
def test_every_family_renders(name, family, phrase):
    d = derive(_checked(name))
    assert d.family == family
    assert phrase in render(d, "text")
    assert render(d, "markdown").startswith("## ")


def test_ddpm_alpha_bar_matches_product():
    d = derive(_checked("ddpm.gen"))
    betas = np.linspace(1e-4, 0.02, 1000)
    np.testing.assert_allclose(d.kernel.alpha_bar, np.cumprod(1 - betas), rtol=1e-10)


SPEC = """model m {{
  data x : real[2]
  {sde}
  net eps = MLP(hidden = [8])
  predict eps = eps(x_t, t)
  loss dsm
}}
"""


def test_checker_reports_non_affine_sde_via_validate():
    text = SPEC.format(sde="sde dx = -x^3 * dt + dw, t in [0, 1]")
    with pytest.raises(SpecErrors) as info:
        check_text(text, "bad.gen")
    rendered = info.value.render()
    assert "bad.gen:3:" in rendered and "drift must be affine in x" in rendered
    assert "ssm" in rendered


def test_validate_accepts_good_and_skips_processless_models():
    assert validate(_checked("vp_sde.gen")) == []
    assert validate(_checked("vae.gen")) == []


TWO_LEVEL = Path(__file__).resolve().parents[1] / "programs" / "good" / "two_level_vae.gen"


@pytest.mark.parametrize("kl", ["analytic", "mc"])
def test_latent_derivation_has_one_kl_per_latent_in_its_guide_context(kl):
    spec = TWO_LEVEL.read_text().replace("kl = analytic", f"kl = {kl}")
    (model,) = check_text(spec, "h.gen")
    text = render(derive(model), "text")
    lines = [line.strip() for line in text.splitlines()]
    assert "log p(x) >= ELBO(x) = E_q(z2, z1 | x)[log p(x | z1)]" in text
    kl_lines = [line for line in lines if "KL(q(" in line]
    assert len(kl_lines) == 2
    # z2: a Laplace guide against a Normal prior has no closed form here, whatever kl says
    assert kl_lines[0] == "- 2 * KL(q(z2 | x) || p(z2))  [Laplace || Normal: Monte Carlo]"
    # z1 is averaged over its guide parent z2; closed form only when asked for
    how = "closed form" if kl == "analytic" else "Monte Carlo"
    assert kl_lines[1] == (
        f"- 2 * E_q(z2 | x)[KL(q(z1 | x, z2) || p(z1 | z2))]  [Normal || Normal: {how}]"
    )
    assert ("closed form: KL(N(m1, s1^2)" in text) == (kl == "analytic")
