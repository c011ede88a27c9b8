"""The diffusion back end skips the preconditioning factors that are identically 1 (c_in of a
variance-preserving process with σ_data = 1, c_out of an eps network): the network still sees
c_in(t) x_t and returns c_out(t) net(...) as computed from the process's marginal."""

from __future__ import annotations

import pytest
import torch

from gendsl.lower import load
from gendsl.lower.diffusion_core import c_out
from gendsl.processes.edm import c_in
from gendsl.resources import stdlib_dir

torch.set_num_threads(1)


@pytest.mark.parametrize("name", ["ddpm", "vp_sde", "subvp_sde", "ve_sde"])
def test_network_input_and_output_are_the_preconditioned_ones(name):
    model = load(str(stdlib_dir() / f"{name}.gen"), D=2)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(32, 2, generator=g)
    t = 0.01 + 0.98 * torch.rand(32, generator=g)
    a_t, s_t = model.process.marginal(t)
    expected = c_in(s_t, a_t=a_t, sigma_data=model.sigma_data)[:, None] * x
    torch.testing.assert_close(model.network_input(x, t), expected, rtol=1e-6, atol=1e-6)
    net = model.nets[model.predict_call.func]
    out = model.call_net(model.predict_call, x, t, {})
    scale = c_out(model.predict_kind, a_t, s_t, model.sigma_data)[:, None]
    torch.testing.assert_close(out, scale * net(expected, t=t), rtol=1e-5, atol=1e-6)
