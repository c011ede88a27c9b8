"""Glow's learned priors (``split(prior = learned)``, ``learntop``): the log-likelihood equals an
independent one (autograd's full Jacobian of the data-to-latent map plus the Gaussian
log-densities of torch.distributions), the flow inverts in float64, sampling draws each factored
half from its conditional, and at initialisation the model is exactly the fixed-prior one."""

from __future__ import annotations

import pytest
import torch
from flow_support import perturbed_flow
from torch.distributions import Normal
from torch.nn import functional as F

import gendsl.lower as L
from gendsl.errors import SpecError
from gendsl.lower.flow_layers import Split
from gendsl.lower.flow_priors import LearnedTop

torch.set_num_threads(1)

STEP = "actnorm; invconv(lu = true); affine_coupling(mask = half, net = ConvNet(channels = [8]))"


def _spec(split: str = "split(prior = learned)", top: str = "; learntop") -> str:
    return f"""model m {{
  data x : image[1, 4, 4]
  latent z : real[16]
  z ~ Normal(0, 1)
  flow f {{ squeeze; {STEP}; {split}; squeeze; {STEP}{top} }}
  x = f(z)
  loss nll
}}"""


def _perturbed_model():
    """The tiny two-level Glow, every parameter (the zero priors included) moved off its
    initial value."""
    return perturbed_flow(_spec(), (1, 4, 4))


def _parts(model, x):
    """Independently of the prior code: the kept half's path to the top (``top``), the
    factored-out half (``x2``) and the kept half at the split (``x1``), by the layers' own
    forward maps only."""
    split = model.flow.layers[-1]
    h = x
    for layer in model.flow.layers[:-1]:
        h = layer(h)
    x1, x2 = h[:, : split.keep], h[:, split.keep :]
    top = x1
    for layer in split.inner.layers[:-1]:  # all but learntop
        top = layer(top)
    return x1, x2, top


def _conv_prior(split, x1):
    """(μ, σ) of Glow's split prior by hand: a 3x3 conv of x₁ padded with ones, scaled by
    exp(3 logs), first half the mean and second half log σ."""
    conv = split.prior.conv
    h = F.conv2d(F.pad(x1, (1, 1, 1, 1), value=1.0), conv.weight, conv.bias)
    h = h * torch.exp(3 * conv.logs)[:, None, None]
    c = x1.shape[1]
    return h[:, :c], torch.exp(h[:, c:])


def test_log_prob_is_change_of_variables_plus_the_conditional_gaussians():
    model = _perturbed_model()
    split = model.flow.layers[-1]
    top_layer = split.inner.layers[-1]
    assert isinstance(split, Split) and isinstance(top_layer, LearnedTop)
    x = torch.rand(3, 1, 4, 4, dtype=torch.float64)
    got = model.log_prob(x)
    for i in range(3):

        def g(v):
            """x ↦ (top before its prior, factored-out half): the flow without its priors."""
            _, x2, top = _parts(model, v.reshape(1, 1, 4, 4))
            return torch.cat([top.reshape(-1), x2.reshape(-1)])

        log_det = torch.linalg.slogdet(torch.autograd.functional.jacobian(g, x[i].reshape(16)))[1]
        x1, x2, top = _parts(model, x[i : i + 1])
        mean, scale = _conv_prior(split, x1)
        log_p2 = Normal(mean, scale).log_prob(x2).sum()
        log_top = Normal(top_layer.mean, torch.exp(top_layer.log_scale)).log_prob(top[0]).sum()
        torch.testing.assert_close(got[i], log_det + log_p2 + log_top, rtol=1e-10, atol=1e-10)


def test_log_det_with_the_priors_is_autograd_jacobian():
    model = _perturbed_model()
    x = torch.rand(2, 1, 4, 4, dtype=torch.float64)
    _, ladj = model.flow.call_and_ladj(x)
    for i in range(2):

        def f(v):
            return model.flow.call_and_ladj(v.reshape(1, 1, 4, 4))[0].reshape(16)

        jac = torch.autograd.functional.jacobian(f, x[i].reshape(16))
        torch.testing.assert_close(ladj[i], torch.linalg.slogdet(jac)[1], rtol=1e-10, atol=1e-10)


def test_round_trip_in_float64():
    model = _perturbed_model()
    x = torch.rand(5, 1, 4, 4, dtype=torch.float64)
    z, _ = model.flow.call_and_ladj(x)
    torch.testing.assert_close(model.flow.inverse(z), x, rtol=1e-10, atol=1e-10)
    eps = torch.randn(5, 16, dtype=torch.float64)
    torch.testing.assert_close(model.flow.call_and_ladj(model.flow.inverse(eps))[0], eps)


def test_at_initialisation_the_learned_prior_is_the_fixed_model_exactly():
    x = torch.rand(8, 1, 4, 4)
    models = []
    for spec in (_spec("split", ""), _spec()):
        torch.manual_seed(0)
        model = L.load(spec)
        model.loss(x)  # actnorm init on the same batch
        models.append(model.eval())
    fixed, learned = models
    extra = dict(learned.named_parameters())
    for name, p in fixed.named_parameters():  # the priors draw nothing: the rest is the same
        assert torch.equal(p, extra.pop(name)), name
    assert all(torch.equal(p, torch.zeros_like(p)) for p in extra.values())
    assert sorted(extra) == [
        "flow.layers.4.inner.layers.4.log_scale",
        "flow.layers.4.inner.layers.4.mean",
        "flow.layers.4.prior.conv.bias",
        "flow.layers.4.prior.conv.logs",
        "flow.layers.4.prior.conv.weight",
    ]
    assert torch.equal(learned.log_prob(x), fixed.log_prob(x))
    gen = [torch.Generator().manual_seed(3) for _ in range(2)]
    assert torch.equal(learned.sample(4, generator=gen[0]), fixed.sample(4, generator=gen[1]))


def test_sampling_draws_the_factored_half_from_its_conditional_gaussian():
    torch.manual_seed(0)
    model = L.load(
        """model m {
  data x : image[2, 2, 2]
  latent z : real[8]
  z ~ Normal(0, 1)
  flow f { split(prior = learned) }
  x = f(z)
  loss nll
}"""
    ).double()
    conv = model.flow.layers[0].prior.conv
    with torch.no_grad():  # μ = 2 x₁ + 0.5, log σ = log 0.1 (centre tap and biases)
        conv.weight[0, 0, 1, 1] = 2.0
        conv.bias.copy_(torch.tensor([0.5, torch.log(torch.tensor(0.1))]))
    n = 20000
    x = model.sample(n, generator=torch.Generator().manual_seed(1))
    x1, x2 = x[:, 0], x[:, 1]
    eps = (x2 - (2 * x1 + 0.5)) / 0.1
    # ε ~ N(0, 1) i.i.d.: its mean has standard error 1/√(4n), its variance √(2/(4n)).
    assert abs(eps.mean().item()) < 5 / (4 * n) ** 0.5
    assert abs(eps.var().item() - 1) < 5 * (2 / (4 * n)) ** 0.5
    assert abs(torch.corrcoef(torch.stack([eps.reshape(-1), x1.reshape(-1)]))[0, 1]) < 0.02


def test_learntop_must_be_the_last_layer():
    spec = """model m {
  data x : real[2]
  latent z : real[2]
  z ~ Normal(0, 1)
  flow f { learntop; actnorm }
  x = f(z)
  loss nll
}"""
    with pytest.raises(SpecError) as err:
        L.load(spec)
    assert str(err.value) == (
        "<string>:5:12: error: learntop is the learned prior at the top of the flow and goes "
        "last; move it to the end of the flow block\n"
        "    flow f { learntop; actnorm }\n"
        "             ^^^^^^^^"
    )
    assert L.load(spec.replace("learntop; actnorm", "actnorm; learntop")).flow.layers[-1].shape


def test_learned_priors_train_every_parameter():
    torch.manual_seed(0)
    model = L.load(_spec())
    x = torch.rand(8, 1, 4, 4)
    model.loss(x)
    with torch.no_grad():  # move the zero heads so every parameter has a signal
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    model.loss(x).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
