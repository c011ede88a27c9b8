"""Time embeddings against hand-written formulas."""

from __future__ import annotations

import math

import numpy as np
import torch

from gendsl.nn import (
    FourierEmbedding,
    LabelEmbedding,
    SinusoidalEmbedding,
    gaussian_fourier_features,
    sinusoidal_embedding,
)


def test_gaussian_fourier_features_match_the_formula():
    t = np.array([0.0, 0.1, 0.5, 0.93])
    W = np.array([0.3, -1.7, 4.0])
    expected = np.array(
        [
            [math.sin(2 * math.pi * ti * w) for w in W]
            + [math.cos(2 * math.pi * ti * w) for w in W]
            for ti in t
        ]
    )
    got = gaussian_fourier_features(torch.tensor(t), torch.tensor(W))
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-12, atol=1e-12)


def test_sinusoidal_embedding_matches_vaswani():
    dim, t = 8, [0.0, 3.0, 17.5, 999.0]
    expected = []
    for pos in t:
        row = [0.0] * dim
        for i in range(dim // 2):
            freq = 1.0 / 10000 ** (i / (dim // 2))
            row[i], row[i + dim // 2] = math.sin(pos * freq), math.cos(pos * freq)
        expected.append(row)
    got = sinusoidal_embedding(torch.tensor(t, dtype=torch.float64), dim)
    np.testing.assert_allclose(got.numpy(), np.array(expected), rtol=1e-10, atol=1e-10)
    emb = SinusoidalEmbedding(dim, scale=1000.0)
    t01 = torch.tensor([0.0, 0.003, 0.0175, 0.999], dtype=torch.float64)
    np.testing.assert_allclose(emb(t01).numpy(), np.array(expected), rtol=1e-9, atol=1e-9)


def test_fourier_frequencies_have_the_requested_scale():
    torch.manual_seed(0)
    emb = FourierEmbedding(40000, scale=3.0)
    assert abs(float(emb.W.std()) - 3.0) < 0.05
    assert "W" in dict(emb.named_buffers()) and not list(emb.parameters())
    t = torch.rand(5)
    torch.testing.assert_close(emb(t), gaussian_fourier_features(t, emb.W))


def test_label_embedding_null_row():
    emb = LabelEmbedding(3, 4)
    torch.testing.assert_close(emb(None, batch=2), emb.table.weight[[3, 3]])
    torch.testing.assert_close(emb(torch.tensor([2, 0])), emb.table.weight[[2, 0]])
