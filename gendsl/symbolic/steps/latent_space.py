"""Steps for a model over the latent space of a trained autoencoder (latent diffusion): what
the process is trained on, why the scale is one over the codes' standard deviation, and what
sampling returns.

Reference: Rombach, Blattmann, Lorenz, Esser & Ommer 2022, "High-Resolution Image Synthesis
with Latent Diffusion Models", CVPR (sec. 3 and 4.3.2, appendix G).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gendsl.symbolic.steps.model import Topic

if TYPE_CHECKING:
    from gendsl.ir import LatentSpace

__all__ = ["latent_space_topic"]

REF = "Rombach et al. 2022, sec. 3 and app. G"

PUSH_FORWARD = """
# x ~ N(0, 1), a linear encoder E(x) = 2 x + 1 and the loss l(u) = u^2 on the codes s E(x):
# the average over data equals the expectation under the codes' law N(1, 4), s^2 (4 + 1)
ls_rng = np.random.default_rng(0)
ls_x = ls_rng.standard_normal(200_000)
ls_s = 0.5
ls_u = (ls_s * (2 * ls_x + 1)) ** 2
ls_exact = ls_s**2 * (4 + 1)
ls_se = ls_u.std() / np.sqrt(ls_u.size)
assert abs(ls_u.mean() - ls_exact) < 5 * ls_se, (ls_u.mean(), ls_exact)
detail = f"mean {ls_u.mean():.4f} vs {ls_exact:.4f} (5 standard errors: {5 * ls_se:.4f})"
"""

SCALE = """
ls_sigma = sp.symbols('sigma', positive=True)
ls_s = 1 / ls_sigma
assert sp.simplify(ls_s**2 * ls_sigma**2 - 1) == 0  # Var[s z] = s^2 Var[z] = 1
"""

INVERSE = """
ls_z, ls_sigma = sp.symbols('z sigma', positive=True)
ls_s = 1 / ls_sigma
assert sp.simplify((ls_s * ls_z) / ls_s - ls_z) == 0  # D(s z / s) = D(z): the scale is undone
"""


def latent_space_topic(space: LatentSpace) -> Topic:
    """The topic that opens the steps of a model over ``space``."""
    x, z, ae = space.data.name, space.latent, space.use
    topic = Topic(f"the latent space of {ae} (latent diffusion)")
    topic.step(
        f"{z} = s * {ae}.encode({x}),  {x} = {ae}.decode({z} / s); {ae} = run({space.run!r}), "
        "frozen",
        rf"{z} = s\,E({x}),\quad {x} = D({z}/s)",
        "the declared use, encode and decode statements: the process below is a model of the "
        f"codes of the data, not of {x}",
        REF,
    )
    topic.step(
        f"the objective of the process with data {z} ~ p_E(z) is E_{x}[loss(s E({x}))]: "
        f"{z} is the push-forward of the data by the encoder",
        rf"\mathbb{{E}}_{{{z} \sim E_\# p}}[\ell(s\,{z})] = \mathbb{{E}}_{{{x} \sim p}}"
        rf"[\ell(s\,E({x}))]",
        "the law of the unconscious statistician: training on encoded batches trains on p_E",
        REF,
        check=("numeric", PUSH_FORWARD),
    )
    topic.step(
        f"s = 1 / std({z}) over the first training batch: the codes s {z} have unit variance, "
        "the scale the process's prior N(0, I) assumes",
        r"s = 1/\hat\sigma_z,\quad \mathrm{Var}[s\,z] = s^2 \hat\sigma_z^2 = 1",
        "Var[a z] = a^2 Var[z]",
        "Rombach et al. 2022, sec. 4.3.2 and app. G",
        check=("sympy", SCALE),
    )
    topic.step(
        f"a sample is {ae}.decode(z / s) of the process's sample z: a perfect model of the codes "
        f"gives D(E({x})), the autoencoder's reconstructions, the best a latent model reaches",
        r"x = D(z/s),\quad z \sim p_\theta \approx s\,E_\# p \Rightarrow x \sim (D \circ E)_\# p",
        "the scale is undone before decoding",
        REF,
        check=("sympy", INVERSE),
    )
    return topic
