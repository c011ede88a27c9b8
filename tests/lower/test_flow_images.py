"""Multi-scale image flows with convolutional couplings (Glow / RealNVP on images): invertible,
log|det| equal to autograd's Jacobian on a tiny image, every parameter trained, a zero-
initialised coupling starting as the identity, and FFJORD on a small image."""

from __future__ import annotations

import pytest
import torch
from flow_support import perturbed_flow

import gendsl.lower as L

torch.set_num_threads(1)

FIELD = "ConvNet(channels = [8], activation = tanh, time = concat)"
COUPLING = "affine_coupling(mask = half, net = ConvNet(channels = [8], zero_out = {z}))"


def _multiscale(zero: str = "false", size: int = 4) -> str:
    step = f"actnorm; invconv(lu = true); {COUPLING.format(z=zero)}"
    return f"""model m {{
  data x : image[1, {size}, {size}]
  latent z : real[{size * size}]
  z ~ Normal(0, 1)
  flow f {{ squeeze; {step}; {step}; split; squeeze; {step} }}
  x = f(z)
  loss nll
}}"""


def _perturbed_model():
    return perturbed_flow(_multiscale(), (1, 4, 4))


def test_multiscale_flow_shapes_and_inverse():
    model = _perturbed_model()
    x = torch.rand(5, 1, 4, 4, dtype=torch.float64)
    z, _ = model.flow.call_and_ladj(x)
    assert z.shape == (5, 16)
    torch.testing.assert_close(model.flow.inverse(z), x, rtol=1e-10, atol=1e-10)
    # 1x4x4 -> squeeze 4x2x2 -> split keeps 2x2x2 -> squeeze 8x1x1.
    assert model.flow.layers[-1].inner.layers[0].out_shape((2, 2, 2)) == (8, 1, 1)


def test_multiscale_log_det_is_autograd_jacobian():
    model = _perturbed_model()
    x = torch.rand(3, 1, 4, 4, dtype=torch.float64)
    _, ladj = model.flow.call_and_ladj(x)
    for i in range(3):

        def f(v, i=i):
            return model.flow.call_and_ladj(v.reshape(1, 1, 4, 4))[0].reshape(16)

        jac = torch.autograd.functional.jacobian(f, x[i].reshape(16))
        expected = torch.linalg.slogdet(jac)[1]
        torch.testing.assert_close(ladj[i], expected, rtol=1e-9, atol=1e-9)


def test_every_parameter_of_an_image_glow_gets_a_gradient():
    torch.manual_seed(0)
    model = L.load(_multiscale(size=8))
    x = torch.rand(8, 1, 8, 8)
    model.loss(x)  # actnorm init
    with torch.no_grad():  # move the zero-initialised heads so every layer has a signal
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    model.loss(x).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_zero_initialised_conv_coupling_starts_as_the_identity():
    torch.manual_seed(0)
    model = L.load(
        f"""model m {{
  data x : image[2, 4, 4]
  latent z : real[2, 4, 4]
  z ~ Normal(0, 1)
  flow f {{ {COUPLING.format(z="true")} }}
  x = f(z)
  loss nll
}}"""
    )
    x = torch.rand(3, 2, 4, 4)
    z, ladj = model.flow.call_and_ladj(x)
    assert torch.equal(z, x) and torch.equal(ladj, torch.zeros(3))


@pytest.mark.parametrize("trace", ["exact", "hutchinson"])
def test_ffjord_on_a_small_image_with_a_conv_field(trace):
    torch.manual_seed(0)
    model = L.load(
        f"""model m {{
  data x : image[1, 4, 4]
  latent z : real[1, 4, 4]
  z ~ Normal(0, 1)
  flow f {{ cnf(net = {FIELD}, trace = {trace}, solver = rk4) }}
  x = f(z)
  loss nll
}}"""
    )
    x = torch.rand(4, 1, 4, 4)
    loss = model.loss(x)
    loss.backward()
    assert torch.isfinite(loss)
    assert model.sample(2).shape == (2, 1, 4, 4)
