"""Sampling a flow at temperature T (Kingma & Dhariwal 2018, Sec. 5): the base's standard
deviation, and every learned prior's, times T; T = 1 is today's sampler bit for bit.

Tolerances are the standard errors of the estimates: for N i.i.d. values of standard deviation s
and kurtosis κ the mean has standard error s/√N and the sample standard deviation
s √(κ - 1)/(2 √N) (the delta method on the sample variance; s/√(2N) for a normal, κ = 3)."""

from __future__ import annotations

import math

import pytest
import torch
from flow_support import perturbed_flow

import gendsl.lower as L
from gendsl.errors import UsageError
from gendsl.objectives.densities import draw

torch.set_num_threads(1)


def _reverse_flow(base: str = "Normal(2, 3)", sampler: str = "") -> str:
    """A flow with no parameters: x = reverse(z), a fixed permutation of the coordinates."""
    return f"""model m {{
  data x : real[3]
  latent z : real[3]
  z ~ {base}
  flow f {{ reverse }}
  x = f(z)
  loss nll
  {sampler}
}}"""


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _assert_std(values: torch.Tensor, mean: float, std: float, kurtosis: float = 3.0) -> None:
    """``values`` (i.i.d.) have this mean and standard deviation, to 5 standard errors."""
    n = values.numel()
    assert abs(values.mean().item() - mean) < 5 * std / math.sqrt(n)
    assert abs(values.std().item() - std) < 5 * std * math.sqrt(kurtosis - 1) / (2 * math.sqrt(n))


@pytest.mark.parametrize("temperature", [0.25, 0.7, 1.0, 1.5])
def test_the_normal_base_std_is_times_t_through_a_fixed_linear_map(temperature: float) -> None:
    model = L.load(_reverse_flow()).double()
    x = model.sample(20000, generator=_gen(), temperature=temperature)
    assert x.shape == (20000, 3)
    _assert_std(x, 2.0, 3.0 * temperature)  # z ~ N(2, 3²): N(2, (3T)²) at temperature T


def test_a_laplace_base_keeps_its_location_and_scales_its_std() -> None:
    model = L.load(_reverse_flow("Laplace(1, 2)")).double()
    x = model.sample(20000, generator=_gen(2), temperature=0.5)
    _assert_std(x, 1.0, 0.5 * 2 * math.sqrt(2), kurtosis=6.0)  # Laplace(μ, b): std √2 b, κ = 6


def test_a_gaussian_mixture_base_tempers_each_component() -> None:
    # π = (1/4, 3/4), μ = (-5, 5), σ = (1, 2): at T = 0.5 each component keeps its weight and
    # mean and has standard deviation T σ_k; the components are 10 standard deviations apart,
    # so the sign tells them apart; one component is drawn per sample for its whole vector
    model = L.load(_reverse_flow("GaussianMixture([1, 3], [-5, 5], [1, 2])")).double()
    t, n = 0.5, 20000
    x = model.sample(n, generator=_gen(4), temperature=t)
    right = x[:, 0] > 0
    assert torch.equal((x > 0).all(1), right) and torch.equal((x < 0).all(1), ~right)
    share = right.double().mean().item()
    assert abs(share - 0.75) < 5 * math.sqrt(0.75 * 0.25 / n)
    _assert_std(x[right], 5.0, 2.0 * t)
    _assert_std(x[~right], -5.0, 1.0 * t)
    assert torch.equal(
        model.sample(10, generator=_gen(4), temperature=1.0), model.sample(10, generator=_gen(4))
    )


def test_learned_priors_are_tempered_the_factored_half_included() -> None:
    model = L.load(
        """model m {
  data x : image[2, 2, 2]
  latent z : real[8]
  z ~ Normal(0, 1)
  flow f { split(prior = learned); learntop }
  x = f(z)
  loss nll
}"""
    ).double()
    split = model.flow.layers[0]
    top = split.inner.layers[0]
    with torch.no_grad():  # top: N(-1, 0.5²); factored half: N(2 x₁ + 0.5, 0.1²) given x₁
        top.mean.fill_(-1.0)
        top.log_scale.fill_(math.log(0.5))
        split.prior.conv.weight[0, 0, 1, 1] = 2.0
        split.prior.conv.bias.copy_(torch.tensor([0.5, math.log(0.1)]))
    t, n = 0.6, 20000
    x = model.sample(n, generator=_gen(1), temperature=t)
    x1, x2 = x[:, 0], x[:, 1]
    _assert_std(x1, -1.0, 0.5 * t)
    eps = (x2 - (2 * x1 + 0.5)) / 0.1  # the conditional's standardised value: N(0, T²)
    _assert_std(eps, 0.0, t)


def test_temperature_one_is_todays_sampler_bit_for_bit() -> None:
    spec = """model m {
  data x : image[1, 4, 4]
  latent z : real[16]
  z ~ Normal(0, 1)
  flow f { squeeze; actnorm; invconv(lu = true);
    affine_coupling(mask = half, net = ConvNet(channels = [4]));
    split(prior = learned); squeeze; actnorm; learntop }
  x = f(z)
  loss nll
}"""
    model = perturbed_flow(spec, (1, 4, 4))
    n = 64
    # the sampler before the temperature: x = T⁻¹(z), z drawn once from the base
    z = draw(model.base(n).to_dist(), generator=_gen(3))
    with torch.no_grad():
        before = model.flow.inverse(z.reshape(n, *model.base_shape))
    before = before.reshape(n, *model.data_shape)
    assert torch.equal(model.sample(n, generator=_gen(3)), before)
    assert torch.equal(model.sample(n, generator=_gen(3), temperature=1.0), before)
    assert not torch.equal(model.sample(n, generator=_gen(3), temperature=0.7), before)


def test_the_spec_declares_the_temperature_and_the_caller_overrides_it() -> None:
    plain = L.load(_reverse_flow("Normal(0, 1)"))
    cold = L.load(_reverse_flow("Normal(0, 1)", "sample with ancestral(temperature = 0.5)"))
    assert cold.checked.sampler.kwargs == {"temperature": 0.5}
    assert plain.checked.sampler.kwargs == {"temperature": 1}
    x1 = plain.sample(100, generator=_gen())
    # base N(0, 1): z_T = 0 + T (z - 0) is exactly T z for T = 0.5
    assert torch.equal(cold.sample(100, generator=_gen()), 0.5 * x1)
    assert torch.equal(cold.sample(100, generator=_gen(), temperature=1.0), x1)
    assert torch.equal(plain.sample(100, generator=_gen(), temperature=0.5), 0.5 * x1)


def test_a_base_without_location_and_scale_samples_at_temperature_one_only() -> None:
    model = L.load(_reverse_flow("Uniform(0, 1)"))
    assert model.sample(10, generator=_gen()).shape == (10, 3)
    with pytest.raises(UsageError) as info:
        model.sample(10, generator=_gen(), temperature=0.7)
    assert str(info.value) == (
        "temperature rescales a location-scale base (Normal, Laplace, StudentT, GaussianMixture); "
        "this flow's base is Uniform: sample at temperature 1"
    )
    with pytest.raises(UsageError, match=r"^temperature must be > 0; got -1\.0$"):
        model.sample(10, temperature=-1.0)
    with pytest.raises(UsageError, match="unknown sampling option"):
        model.sample(10, heat=2)
