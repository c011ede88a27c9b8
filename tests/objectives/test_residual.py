"""NVAE's residual normal posterior: its KL against torch's closed form on the implied
absolute parameters, and the formula derived symbolically from the Normal–Normal KL."""

from __future__ import annotations

import sympy as sp
import torch
from torch.distributions import Normal, kl_divergence

from gendsl.objectives.densities import Density
from gendsl.objectives.residual import (
    ResidualNormal,
    residual_normal_kl,
    residual_normal_params,
)


def _draws(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    shape = (5, 3)
    prior_loc = torch.randn(shape, generator=g, dtype=torch.float64)
    prior_scale = torch.rand(shape, generator=g, dtype=torch.float64) * 2 + 0.1
    delta_loc = torch.randn(shape, generator=g, dtype=torch.float64)
    delta_scale = torch.rand(shape, generator=g, dtype=torch.float64) * 3 + 0.05
    return prior_loc, prior_scale, delta_loc, delta_scale


def test_residual_kl_equals_torch_kl_of_the_absolute_parameters():
    prior_loc, prior_scale, delta_loc, delta_scale = _draws()
    loc, scale = residual_normal_params(prior_loc, prior_scale, delta_loc, delta_scale)
    expected = kl_divergence(Normal(loc, scale), Normal(prior_loc, prior_scale))
    torch.testing.assert_close(residual_normal_kl(delta_loc, delta_scale, prior_scale), expected)


def test_residual_kl_is_derived_from_the_normal_kl():
    mu_p, dmu = sp.symbols("mu_p dmu", real=True)
    s_p, ds = sp.symbols("sigma_p dsigma", positive=True)
    mu_q, s_q = mu_p + dmu, s_p * ds
    normal_kl = (
        sp.log(s_p / s_q) + (s_q**2 + (mu_q - mu_p) ** 2) / (2 * s_p**2) - sp.Rational(1, 2)
    )
    residual = sp.Rational(1, 2) * (dmu**2 / s_p**2 + ds**2 - sp.log(ds**2) - 1)
    assert sp.simplify(sp.expand_log(normal_kl - residual, force=True)) == 0
    assert mu_p not in residual.free_symbols  # the KL does not depend on the prior's mean


def test_residual_density_is_the_absolute_normal_with_the_residual_kl():
    prior_loc, prior_scale, delta_loc, delta_scale = _draws(1)
    kw = {"batch": (5,), "event": (3,), "like": prior_loc}
    q = ResidualNormal(
        {"loc": prior_loc, "scale": prior_scale},
        {"loc": delta_loc, "scale": delta_scale},
        **kw,
    )
    p = Density("Normal", {"loc": prior_loc, "scale": prior_scale}, **kw)
    absolute = Density("Normal", dict(q.params), **kw)
    torch.testing.assert_close(q.params["loc"], prior_loc + delta_loc)
    torch.testing.assert_close(q.params["scale"], prior_scale * delta_scale)
    torch.testing.assert_close(q.kl_elements(p), absolute.kl_elements(p))
    x = q.rsample()
    torch.testing.assert_close(
        q.log_prob(x), Normal(q.params["loc"], q.params["scale"]).log_prob(x).sum(-1)
    )
