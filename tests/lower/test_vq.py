"""Vector quantisation against hand-written formulas, and the compiled VQ-VAE."""

from __future__ import annotations

import numpy as np
import torch
from lower_specs import checked_latent

from gendsl.lower import compile_model
from gendsl.objectives.vq import VectorQuantizer, ema_codebook_update, nearest_code, perplexity

VQVAE = """
model vqvae {
  data x : real[6]
  latent e : code[K = 5, dim = 3]
  net enc = MLP(hidden = [8])
  net dec = MLP(hidden = [8])
  e = quantize(enc(x))
  x | e ~ Normal(dec(e), 0.5)
  loss vq(commitment = 0.25, codebook = CODEBOOK)
}
"""


def test_nearest_code_and_straight_through_gradient():
    torch.manual_seed(0)
    vq = VectorQuantizer(4, 3, ema=False)
    z_e = torch.randn(2, 3, 5, requires_grad=True)
    out = vq(z_e)
    flat = z_e.detach().permute(0, 2, 1).reshape(-1, 3).numpy()
    book = vq.codebook.detach().numpy()
    brute = np.array([np.argmin(((book - v) ** 2).sum(1)) for v in flat]).reshape(2, 5)
    assert np.array_equal(nearest_code(z_e, vq.codebook).numpy(), brute)
    torch.testing.assert_close(out.detach(), torch.from_numpy(book[brute]).permute(0, 2, 1))
    w = torch.randn_like(out)
    (grad,) = torch.autograd.grad((out * w).sum(), z_e)
    torch.testing.assert_close(grad, w)


def test_ema_update_matches_the_hand_formula():
    g = torch.Generator().manual_seed(0)
    K, dim, decay, eps = 3, 2, 0.9, 1e-5
    counts, sums = torch.rand(K, generator=g) + 0.5, torch.randn(K, dim, generator=g)
    z_e = torch.randn(7, dim, generator=g)
    index = torch.tensor([0, 2, 2, 0, 2, 2, 0])
    new_counts, new_sums, book = ema_codebook_update(
        counts, sums, z_e, index, decay=decay, eps=eps
    )
    for i in range(K):
        members = [j for j in range(7) if index[j] == i]
        n_i = decay * counts[i] + (1 - decay) * len(members)
        m_i = decay * sums[i] + (1 - decay) * sum((z_e[j] for j in members), torch.zeros(dim))
        torch.testing.assert_close(new_counts[i], n_i)
        torch.testing.assert_close(new_sums[i], m_i)
    total = new_counts.sum()
    smoothed = [(new_counts[i] + eps) / (total + K * eps) * total for i in range(K)]
    for i in range(K):
        torch.testing.assert_close(book[i], new_sums[i] / smoothed[i])


def test_perplexity_of_uniform_and_single_code_usage():
    assert abs(float(perplexity(torch.arange(8), 8)) - 8) < 1e-9
    assert abs(float(perplexity(torch.zeros(10, dtype=torch.long), 8)) - 1) < 1e-9
    p = np.array([3, 1]) / 4
    want = np.exp(-(p * np.log(p)).sum())
    assert abs(float(perplexity(torch.tensor([0, 0, 0, 1]), 4)) - want) < 1e-9


def test_vq_vae_loss_terms_and_training_reduce_reconstruction():
    torch.manual_seed(0)
    model = compile_model(checked_latent(VQVAE.replace("CODEBOOK", "loss")), bindings={})
    x = torch.randn(64, 6)
    loss = model.loss(x)
    last = model.quantizer.last
    z_e, z_q = last["z_e"], last["z_q"]
    recon = model.nets["dec"](model.quantizer.lookup(last["index"]))
    nll = -torch.distributions.Normal(recon, 0.5).log_prob(x).sum(1)
    sq = (z_e - z_q).pow(2).sum(1)
    torch.testing.assert_close(loss, (nll + sq + 0.25 * sq).mean())
    d0 = model.diagnostics(x)
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    for _ in range(200):
        opt.zero_grad()
        model.loss(x).backward()
        opt.step()
    d1 = model.diagnostics(x)
    assert d1["nll"] < d0["nll"] - 1.0
    assert 1.0 <= d1["perplexity"] <= 5.0
    assert model.sample(4, generator=torch.Generator().manual_seed(0)).shape == (4, 6)


def test_vq_vae_with_ema_codebook_moves_codes_without_gradients():
    torch.manual_seed(0)
    model = compile_model(
        checked_latent(VQVAE.replace("CODEBOOK", "ema(decay = 0.5)")), bindings={}
    )
    assert "quantizer.codebook" in model.state_dict()
    assert not any(p is model.quantizer.codebook for p in model.parameters())
    before = model.quantizer.codebook.clone()
    model.train()
    model.loss(torch.randn(32, 6))
    assert not torch.equal(before, model.quantizer.codebook)
    model.eval()
    after = model.quantizer.codebook.clone()
    model.loss(torch.randn(32, 6))
    assert torch.equal(after, model.quantizer.codebook)
