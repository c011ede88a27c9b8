"""JEM (Grathwohl et al. 2020): E(x, y) = -f(x)[y], p(y | x) = softmax f(x),
E(x) = -log Σ_y exp f(x)[y], checked against the formulas written out in float64."""

from __future__ import annotations

import torch

import gendsl
from gendsl.objectives.dsm import dsm_fixed_sigma

torch.set_num_threads(1)

SPEC = """model jem {
  data x : real[2]
  condition y : label[3]
  net E = MLP(hidden = [8])
  energy E(x, y)
  loss dsm(sigma = 0.1)
}"""


def _model():
    torch.manual_seed(0)
    return gendsl.load(SPEC).double()


def test_p_y_given_x_is_the_softmax_and_the_marginal_energy_is_minus_logsumexp():
    model = _model()
    x = torch.randn(5, 2, dtype=torch.float64)
    f = model.nets["E"](x)
    assert f.shape == (5, 3)
    softmax = f.exp() / f.exp().sum(1, keepdim=True)
    torch.testing.assert_close(model.class_log_probs(x).exp(), softmax, rtol=1e-12, atol=0)
    torch.testing.assert_close(model.energy(x), -f.exp().sum(1).log(), rtol=1e-12, atol=0)
    y = torch.tensor([0, 2, 1, 1, 0])
    joint = model.energy(x, y)
    torch.testing.assert_close(joint, -f[torch.arange(5), y], rtol=0, atol=0)
    # p(y | x) = p(x, y) / p(x) = exp(-E(x, y)) / exp(-E(x))
    ratio = (model.energy(x) - joint).exp()
    torch.testing.assert_close(ratio, softmax[torch.arange(5), y], rtol=1e-12, atol=0)


def test_the_hybrid_loss_is_the_marginal_density_loss_plus_the_cross_entropy():
    model = _model()
    x, y = torch.randn(6, 2, dtype=torch.float64), torch.tensor([0, 1, 2, 0, 1, 2])
    torch.manual_seed(1)
    loss = model.loss((x, y))
    torch.manual_seed(1)
    score = lambda v: model.score(v, create_graph=True)  # noqa: E731
    density = dsm_fixed_sigma(score, x, 0.1).mean()
    f = model.nets["E"](x)
    ce = -(f[torch.arange(6), y] - f.exp().sum(1).log()).mean()
    torch.testing.assert_close(loss, density + ce, rtol=1e-12, atol=0)


def test_samples_for_a_label_run_langevin_on_that_class_energy():
    model = _model()
    g = torch.Generator().manual_seed(3)
    a = model.sample(4, steps=3, generator=g, y=1)
    g = torch.Generator().manual_seed(3)
    b = model.sample(4, steps=3, generator=g, y=2)
    assert a.shape == (4, 2) and not torch.allclose(a, b)
