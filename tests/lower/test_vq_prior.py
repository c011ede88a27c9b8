"""`loss vq(prior = pixelcnn(...))`: a PixelCNN fitted to the VQ-VAE's codes by maximum
likelihood with a stop-gradient — the autoencoder's gradients are those of the uniform-prior
model, the prior's NLL falls below the uniform log K per position, the ELBO uses log p(c), and
samples decode codes drawn from it."""

from __future__ import annotations

import math

import pytest
import torch

from gendsl.analysis import check_text
from gendsl.errors import SpecErrors
from gendsl.ir import Opt
from gendsl.lower import compile_model
from gendsl.objectives.code_prior import code_prior

torch.set_num_threads(1)

SPEC = """
model vq {
  data x : image[1, 8, 8]
  latent e : code[K = 4, dim = 3]
  net enc = ConvNet(channels = [4, 4], down = 2)
  net dec = ConvNet(channels = [4, 4], transpose = true, up = 2)
  e = quantize(enc(x))
  x | e ~ Normal(dec(e), 0.5)
  loss vq(codebook = loss, prior = PRIOR)
}
"""


def _model(prior: str, seed: int = 0):
    (m,) = check_text(SPEC.replace("PRIOR", prior))
    torch.manual_seed(seed)
    return compile_model(m, bindings={})


def test_the_prior_does_not_change_the_autoencoders_gradients():
    x = torch.rand(5, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    grads = []
    for prior in ("uniform", "pixelcnn(channels = 8, layers = 1)"):
        model = _model(prior)
        model.loss(x).backward()
        grads.append({k: p.grad.clone() for k, p in model.named_parameters() if "prior" not in k})
    assert grads[0].keys() == grads[1].keys() and len(grads[0]) > 0
    for k in grads[0]:
        torch.testing.assert_close(grads[0][k], grads[1][k], rtol=0, atol=0)


def test_the_prior_learns_the_codes_and_enters_the_elbo_and_samples():
    model = _model("pixelcnn(channels = 8, layers = 1)")
    x = torch.rand(16, 1, 8, 8, generator=torch.Generator().manual_seed(2))
    opt = torch.optim.Adam(model.prior.parameters(), lr=0.03)
    for _ in range(60):
        opt.zero_grad()
        model.loss(x).backward()
        opt.step()
    with torch.no_grad():
        model.loss(x)
        index = model.quantizer.last["index"]
        log_p = model.prior.log_prob(index)
        nll = -model._vq_terms(model.as_data(x))["nll"]
        torch.testing.assert_close(model.elbo(x), nll + log_p)
    assert index.shape == (16, 2, 2)
    # the codes of a fixed batch are learnt: well below the uniform 4 · log 4 nats per grid
    assert float(-log_p.mean()) < 0.5 * 4 * math.log(4)
    s = model.sample(3, generator=torch.Generator().manual_seed(0))
    assert s.shape == (3, 1, 8, 8)
    assert any("PixelCNN" in t for t in model.objective_terms())


def test_the_prior_trains_from_step_after():
    model = _model("pixelcnn(channels = 8, layers = 1, after = 2)")
    x = torch.rand(4, 1, 8, 8)
    for step in range(3):
        model.zero_grad()
        model.train()
        model.loss(x).backward()
        got = [p.grad for p in model.prior.parameters()]
        assert all(g is None for g in got) == (step < 2)


def test_uniform_elbo_is_minus_positions_log_k():
    model = _model("uniform")
    x = torch.rand(3, 1, 8, 8)
    with torch.no_grad():
        nll = -model._vq_terms(model.as_data(x))["nll"]
        torch.testing.assert_close(model.elbo(x), nll - 4 * math.log(4))


def test_a_pixelcnn_prior_needs_a_grid_of_codes():
    text = SPEC.replace("ConvNet(channels = [4, 4], down = 2)", "MLP(hidden = [8])")
    text = text.replace("ConvNet(channels = [4, 4], transpose = true, up = 2)", "MLP()")
    with pytest.raises(SpecErrors, match="prior = pixelcnn needs a 2-D grid of codes") as err:
        check_text(text.replace("PRIOR", "pixelcnn"))
    assert str(err.value).startswith("<string>:9:28: error")  # at the prior option
    with pytest.raises(ValueError, match="prior = pixelcnn needs a 2-D grid of codes"):
        code_prior(Opt("pixelcnn", (), {}), 8, (8,))  # the back end refuses it too
