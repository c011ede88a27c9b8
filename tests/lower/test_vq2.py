"""A two-level VQ-VAE (VQ-VAE-2, Razavi et al. 2019): one codebook and one prior per quantised
code, the loss and the bound summed over the levels, sampling from both priors."""

from __future__ import annotations

import math

import torch

from gendsl.analysis import check_text
from gendsl.lower import compile_model

VQVAE2 = """
model vqvae2 {
  data x : image[1, 8, 8]
  latent t : code[K = 5, dim = 3]
  latent u : real[4, 8, 8]
  latent b : code[K = 7, dim = 2]
  latent v : real[4, 8, 8]
  net enc_t = ConvNet(channels = [8, 8], down = 2)
  net up_t = ConvNet(channels = [8, 8], transpose = true, up = 2)
  net enc_b = ConvNet(channels = [8, 8], down = 1)
  net up_b = ConvNet(channels = [8, 8], transpose = true, up = 1)
  net dec = ConvNet(channels = [8])
  t = quantize(enc_t(x))
  u = up_t(t)
  b = quantize(enc_b(x, u))
  v = up_b(b)
  x | u, v ~ Normal(dec(u, v), 0.5)
  loss vq(commitment = 0.3, codebook = loss)
}
"""


def vqvae2():
    torch.manual_seed(0)
    (checked,) = check_text(VQVAE2)
    return compile_model(checked, bindings={})


def test_each_code_has_its_own_codebook_and_grid():
    model = vqvae2()
    t, b = model.levels
    assert (t.name, t.quantizer.K, t.quantizer.dim, t.prior.grid) == ("t", 5, 3, (2, 2))
    assert (b.name, b.quantizer.K, b.quantizer.dim, b.prior.grid) == ("b", 7, 2, (4, 4))
    assert {"quantizer.codebook", "quantizer_b.codebook"} <= set(model.state_dict())


def test_loss_and_elbo_sum_the_terms_of_both_levels():
    model = vqvae2()
    x = torch.rand(3, 1, 8, 8)
    loss = model.loss(x)
    t, b = model.levels
    z_t, z_b = t.quantizer.last, b.quantizer.last
    # the decoder's input recomputed by hand from the two codebooks' lookups
    u = model.nets["up_t"](t.quantizer.lookup(z_t["index"]))
    v = model.nets["up_b"](b.quantizer.lookup(z_b["index"]))
    mean = model.nets["dec"](u, v)
    nll = -torch.distributions.Normal(mean, 0.5).log_prob(x).sum((1, 2, 3))
    terms = sum(
        (1.3 * (z["z_e"] - z["z_q"]).pow(2).sum((1, 2, 3)) for z in (z_t, z_b)),
        torch.zeros(3),
    )
    torch.testing.assert_close(loss, (nll + terms).mean())
    # uniform priors: log p(c) = -(positions) log K per level
    with torch.no_grad():
        elbo = model.elbo(x)
    torch.testing.assert_close(elbo, -nll.detach() - 4 * math.log(5) - 16 * math.log(7))


def test_sampling_draws_both_levels_from_their_priors():
    model = vqvae2()
    g = torch.Generator().manual_seed(3)
    means = model.sample(4, generator=g, mean=True)
    g = torch.Generator().manual_seed(3)
    t = model.levels[0].prior.sample(4, generator=g, device="cpu")
    b = model.levels[1].prior.sample(4, generator=g, device="cpu")
    u = model.nets["up_t"](model.levels[0].quantizer.lookup(t))
    v = model.nets["up_b"](model.levels[1].quantizer.lookup(b))
    with torch.no_grad():
        torch.testing.assert_close(means, model.nets["dec"](u, v))
    assert set(model.diagnostics(torch.rand(2, 1, 8, 8))) >= {"perplexity/t", "perplexity/b"}


def test_the_bottom_pixelcnn_prior_is_conditioned_on_the_top_codes():
    torch.manual_seed(0)
    text = VQVAE2.replace("codebook = loss)", "codebook = loss, prior = pixelcnn(channels = 4))")
    (checked,) = check_text(text)
    model = compile_model(checked, bindings={})
    top, bottom = model.levels
    assert top.prior.net.cond_embed is None and bottom.prior.net.cond_embed.num_embeddings == 5
    x = torch.rand(3, 1, 8, 8)
    with torch.no_grad():
        elbo = model.elbo(x)
        nll = -model._vq_terms(model.as_data(x))["nll"]
        t, b = top.quantizer.last["index"], bottom.quantizer.last["index"]
        log_p = top.prior.log_prob(t) + bottom.prior.log_prob(b, t)
        torch.testing.assert_close(elbo, nll + log_p)
        other = (t + 1) % 5  # other top codes give the bottom codes another probability
        assert not torch.allclose(bottom.prior.log_prob(b, other), bottom.prior.log_prob(b, t))
    assert model.sample(2, generator=torch.Generator().manual_seed(1)).shape == (2, 1, 8, 8)
