"""``gendsl derive``: the mathematics a spec implies, written out for that spec.

Each family's plugin (:mod:`gendsl.families`) writes the equations of the papers it follows,
with the spec's own names and, where the spec fixes them, closed forms derived by sympy (SDE
kernels, chain products, path velocities).  The text types, :func:`~gendsl.symbolic.derived.render`
and the cache of finished derivations live in :mod:`gendsl.symbolic.derived`, which imports no
sympy.
"""

from __future__ import annotations

from gendsl.families import family
from gendsl.families.text import opt_text
from gendsl.ir import CheckedModel
from gendsl.symbolic.derived import Derivation, Section

__all__ = ["derive_fresh"]


def derive_fresh(model: CheckedModel) -> Derivation:
    """The derivation of ``model`` (see the module docstring), computed: what
    :func:`gendsl.symbolic.derived.derive` returns when its cache has no entry."""
    sec = Section(f"{model.name}: {model.family} model")
    space = model.latent_space
    if space is not None:
        x, z, ae = space.data.name, space.latent, space.use
        sec.add(
            "latent space",
            f"{z} = s * {ae}.encode({x}), {x} = {ae}.decode({z} / s); {ae} = run({space.run!r}) "
            "frozen, s = 1 / std(z) on the first batch (Rombach et al. 2022)",
        )
    kernel = family(model.family).derive(model, sec)
    if model.sampler is not None:
        sec.add("sampler", opt_text(model.sampler))
    return Derivation(model.name, model.family, [sec], kernel)
