"""Caption embeddings for the bundled labelled sets, computed without downloading a text
encoder: every label gets procedurally generated captions ("a handwritten seven", "the digit
seven", ...) whose words are mapped by a fixed word-embedding table to a sequence
``[L, E]`` (padded with a ``<pad>`` word).  The same seed gives the same table on every machine,
so the embeddings play the role CLIP text embeddings play for latent diffusion (Rombach et al.
2022): a real condition ``c : real[L, E]`` stored with the images in an ``.npz`` (``x``, ``c``,
``y``).  Precomputed CLIP embeddings go in the same place: ``c`` of shape ``[n, 77, 768]``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

__all__ = [
    "CAPTION_LENGTH",
    "TABLE_SEED",
    "VOCABULARY",
    "caption_embeddings",
    "captions",
    "word_table",
    "write_conditioned",
]

_NUMBERS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
_TEMPLATES = (
    ("a", "handwritten", "{word}"),
    ("the", "digit", "{word}"),
    ("a", "digit", "{digit}"),
    ("{word}",),
)
CAPTION_LENGTH = max(len(t) for t in _TEMPLATES)
"""Words per caption (shorter captions are padded)."""
VOCABULARY: tuple[str, ...] = (
    "<pad>", "a", "the", "handwritten", "digit", *_NUMBERS, *(str(k) for k in range(10))
)  # fmt: skip
"""Every word a caption can hold."""
TABLE_SEED = 20221220
"""The seed of the word-embedding table (the fixed encoder)."""


def captions(labels: Sequence[int], *, seed: int = 0) -> list[list[str]]:
    """One caption per label, its template drawn from a generator seeded with ``seed``, padded
    to :data:`CAPTION_LENGTH` words."""
    rng = np.random.default_rng(seed)
    out = []
    for label, pick in zip(labels, rng.integers(len(_TEMPLATES), size=len(labels)), strict=True):
        words = [w.format(word=_NUMBERS[int(label)], digit=int(label)) for w in _TEMPLATES[pick]]
        out.append(words + ["<pad>"] * (CAPTION_LENGTH - len(words)))
    return out


def word_table(dim: int) -> np.ndarray:
    """The fixed encoder: one N(0, 1) vector of size ``dim`` per word of :data:`VOCABULARY`,
    drawn from :data:`TABLE_SEED` (the same on every machine and for every caption seed)."""
    return np.random.default_rng([TABLE_SEED, dim]).standard_normal((len(VOCABULARY), dim))


def caption_embeddings(labels: Sequence[int], *, dim: int = 16, seed: int = 0) -> np.ndarray:
    """``float32 [n, L, E]``: the captions of ``labels`` (:func:`captions`, templates drawn
    from ``seed``) encoded word by word by :func:`word_table`."""
    table = word_table(dim)
    index = {w: i for i, w in enumerate(VOCABULARY)}
    ids = np.array([[index[w] for w in c] for c in captions(labels, seed=seed)], dtype=np.int64)
    return table[ids.reshape(len(labels), CAPTION_LENGTH)].astype(np.float32)


def write_conditioned(
    path: str | Path, x: np.ndarray, c: np.ndarray, y: np.ndarray | None = None
) -> Path:
    """Save images ``x``, conditions ``c`` (and labels ``y``) as the ``.npz`` that
    ``--data PATH`` reads."""
    if len(c) != len(x):
        raise ValueError(f"{len(c)} conditions for {len(x)} samples")
    arrays = {"x": x, "c": c} | ({} if y is None else {"y": y})
    path = Path(path)
    np.savez(path, **arrays)
    return path
