"""Classifier-free guidance with an embedding condition (real[E] or real[L, E]) and a learned
null embedding (Ho & Salimans 2022; Rombach et al. 2022)."""

from __future__ import annotations

import math

import pytest
import torch

from gendsl.lower import load
from gendsl.lower.diffusion import ClassifierFreeModel
from gendsl.lower.diffusion_guidance import drop_to_null

torch.set_num_threads(1)

SPEC = """
model xattn {
  data x : image[1, 8, 8]
  condition c : real[3, 6]
  let beta(t) = 0.1 + 19.9 * t
  sde dx = -0.5 * beta(t) * x * dt + sqrt(beta(t)) * dw, t in [0, 1]
  net eps = UNet(channels = [8, 16], cross_attention = [4], time = fourier)
  predict eps = eps(x_t, t, c)
  loss dsm
  guidance classifier_free(scale = 2, drop = 0.2)
  sample with ddim(steps = 4)
}
"""


def _binomial_bound(n: int, p: float) -> float:
    """Five standard deviations of a Binomial(n, p) count."""
    return 5 * math.sqrt(n * p * (1 - p))


@pytest.mark.parametrize("p", [0.1, 0.5])
def test_drop_to_null_uses_the_null_embedding_at_rate_p(p):
    n = 20000
    c, null = torch.ones(n, 3, 6), torch.full((3, 6), -1.0)
    out = drop_to_null(c, null, p, generator=torch.Generator().manual_seed(0))
    is_null = (out == -1).all(dim=(1, 2))
    assert bool(((out == 1).all(dim=(1, 2)) | is_null).all())  # whole samples, never mixed
    assert abs(int(is_null.sum()) - n * p) < _binomial_bound(n, p)


def test_drop_to_null_keeps_labels_integer():
    y = torch.zeros(1000, dtype=torch.long)
    out = drop_to_null(y, torch.tensor(7), 0.3, generator=torch.Generator().manual_seed(1))
    assert out.dtype == torch.long and set(out.unique().tolist()) == {0, 7}


def _model() -> ClassifierFreeModel:
    torch.manual_seed(0)
    model = load(SPEC)
    assert isinstance(model, ClassifierFreeModel)
    return model


def test_training_replaces_embeddings_by_the_learned_null_embedding():
    model = _model().train()
    with torch.no_grad():
        model.null_embedding.fill_(-1.0)
    n = 4000
    seen = model.training_conditions({"c": torch.ones(n, 3, 6)})["c"]
    dropped = int((seen == -1).all(dim=(1, 2)).sum())
    assert abs(dropped - 0.2 * n) < _binomial_bound(n, 0.2)
    assert torch.equal(
        model.eval().training_conditions({"c": torch.ones(2, 3, 6)})["c"], torch.ones(2, 3, 6)
    )
    assert "null_embedding" in model.state_dict()


def test_the_guided_score_extrapolates_from_the_null_embedding():
    model = _model().eval()
    for p in model.parameters():  # non-zero cross-attention outputs and null embedding
        torch.nn.init.normal_(p, std=0.3)
    x, t, c = torch.randn(2, 1, 8, 8), torch.full((2,), 0.5), torch.randn(2, 3, 6)
    s_c = model.score(x, t, {"c": c})
    s_u = model.score(x, t, {"c": model.null_embedding.expand(2, 3, 6)})
    assert not torch.allclose(s_c, s_u)
    got = model.sampling_score_fn({"c": c}, scale=2.0)(x, t)
    torch.testing.assert_close(got, s_c + 2.0 * (s_c - s_u), atol=1e-4, rtol=1e-4)
