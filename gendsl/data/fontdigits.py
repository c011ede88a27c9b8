"""``fontdigits``: 28×28 digits rendered from the fonts that ship with matplotlib (no download).

Every font in matplotlib's ``mpl-data/fonts/ttf`` whose glyphs for ``0``–``9`` are the standard
digits (glyph names ``zero`` … ``nine``: the DejaVu, STIX and Computer Modern text faces) is
rendered once per digit with matplotlib's FreeType wrapper, cropped and fitted into a 40-pixel-high
box centred on a 56×56 canvas (twice the final size; MNIST fits its digits in 20×20 of 28×28,
LeCun et al. 1998). Each image then draws a font, a random affine map (rotation, shear,
anisotropic scale, translation) applied with ``affine_grid``/``grid_sample``, and a stroke width
change (grey-scale erosion or dilation by 3×3 max-pooling), is averaged down to 28×28 and
quantised to ``uint8``. Labels are balanced (exactly n/10 per class). The training split
(60 000 images) and the test split (10 000) come from independent seeded streams, so they are
the same on every run on the same fonts; both are generated on first use (a few seconds) and
cached in ``$GENDSL_CACHE``.
"""

from __future__ import annotations

import io
import math
import zipfile
from functools import cache
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from gendsl.cache import cache_folder, write_atomic
from gendsl.errors import DataError

__all__ = [
    "CACHE_NAME",
    "NUM_CLASSES",
    "SEED",
    "SIZE",
    "SPLIT_SIZES",
    "font_files",
    "fontdigits_split",
    "fonts_used",
    "generate",
    "glyphs",
]

NUM_CLASSES = 10
SIZE = 28
"""Side of the final images."""
SPLIT_SIZES = {"train": 60_000, "test": 10_000}
SEED = 20_261_130
"""Seed of the image streams (never change it: it defines the data set)."""
CACHE_NAME = "fontdigits_v1.npz"
"""File name of the cached set (bump the version when the recipe changes)."""

_CANVAS = 2 * SIZE
_BOX = 40
_RENDER_POINTS = 96
_DIGIT_NAMES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
_MAX_ROTATION = math.radians(15.0)
_MAX_SHEAR = 0.25
_SCALE_RANGE = (0.8, 1.1)
_ASPECT_RANGE = (0.9, 1.1)
_MAX_SHIFT = 2.0 / SIZE * 2.0
"""±2 final pixels, in ``affine_grid``'s normalised coordinates (the side spans 2)."""
_STROKE_STEPS = (-1, 0, 1, 2)
"""Erosions (negative) or dilations (positive) by a 3×3 window on the 56×56 canvas."""
_CHUNK = 4096
_SPLIT_STREAM = {"train": 0, "test": 1}
_KEYS = {"fonts", "x_train", "y_train", "x_test", "y_test"}


def font_files() -> list[Path]:
    """matplotlib's bundled fonts whose ``0``–``9`` glyphs are the standard digits, by name."""
    import matplotlib
    from matplotlib.ft2font import FT2Font

    folder = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
    chosen = []
    for path in sorted(folder.glob("*.ttf")):
        font = FT2Font(str(path))
        names = tuple(font.get_glyph_name(font.get_char_index(ord(str(d)))) for d in range(10))
        if names == _DIGIT_NAMES:
            chosen.append(path)
    return chosen


def _render(path: Path, digit: int) -> np.ndarray:
    """The anti-aliased glyph of ``digit`` in ``path``, cropped to its ink, in [0, 1]."""
    from matplotlib.ft2font import FT2Font

    font = FT2Font(str(path))
    font.set_size(_RENDER_POINTS, 72)
    font.set_text(str(digit), 0.0)
    font.draw_glyphs_to_bitmap(antialiased=True)
    image = np.asarray(font.get_image(), dtype=np.float32) / 255.0
    rows, cols = np.nonzero(image.any(axis=1))[0], np.nonzero(image.any(axis=0))[0]
    return image[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]


def _fit(glyph: np.ndarray) -> torch.Tensor:
    """``glyph`` scaled to ``_BOX`` pixels high (at most ``_BOX`` wide), centred on the canvas."""
    h, w = glyph.shape
    scale = min(_BOX / h, _BOX / w)
    new_h, new_w = max(1, round(h * scale)), max(1, round(w * scale))
    resized = F.interpolate(
        torch.from_numpy(glyph)[None, None],
        size=(new_h, new_w),
        mode="bilinear",
        antialias=True,
        align_corners=False,
    )[0, 0].clamp(0.0, 1.0)
    canvas = torch.zeros(_CANVAS, _CANVAS)
    top, left = (_CANVAS - new_h) // 2, (_CANVAS - new_w) // 2
    canvas[top : top + new_h, left : left + new_w] = resized
    return canvas


@cache
def glyphs() -> tuple[torch.Tensor, tuple[str, ...]]:
    """Fitted glyphs ``[fonts, 10, 56, 56]`` and the font file names."""
    files = font_files()
    if not files:
        raise DataError(
            "fontdigits cannot be generated: matplotlib's fonts folder holds no font with the "
            "standard digits 0-9"
        )
    stack = torch.stack([torch.stack([_fit(_render(p, d)) for d in range(10)]) for p in files])
    return stack, tuple(p.name for p in files)


def _inverse_affines(rng: np.random.Generator, n: int) -> torch.Tensor:
    """``[n, 2, 3]`` maps from output to input coordinates, as ``affine_grid`` takes them.

    The forward map is ``x ↦ R(θ) Sh(s) diag(a·c, c/a) x + t``: rotation, horizontal shear,
    scale ``c`` with aspect ``a``, translation ``t``.
    """
    angle = rng.uniform(-_MAX_ROTATION, _MAX_ROTATION, n)
    shear = rng.uniform(-_MAX_SHEAR, _MAX_SHEAR, n)
    scale = rng.uniform(*_SCALE_RANGE, n)
    aspect = rng.uniform(*_ASPECT_RANGE, n)
    shift = rng.uniform(-_MAX_SHIFT, _MAX_SHIFT, (n, 2))
    cos, sin = np.cos(angle), np.sin(angle)
    rotation = np.stack([np.stack([cos, -sin], -1), np.stack([sin, cos], -1)], -2)
    shearing = np.zeros((n, 2, 2))
    shearing[:, 0, 0] = shearing[:, 1, 1] = 1.0
    shearing[:, 0, 1] = shear
    scaling = np.zeros((n, 2, 2))
    scaling[:, 0, 0], scaling[:, 1, 1] = scale * aspect, scale / aspect
    forward = rotation @ shearing @ scaling
    inverse = np.linalg.inv(forward)
    offset = -(inverse @ shift[:, :, None])
    return torch.from_numpy(np.concatenate([inverse, offset], axis=2)).float()


def _stroke(x: torch.Tensor, steps: torch.Tensor) -> torch.Tensor:
    """Grey-scale erosion (``steps < 0``) or dilation (``> 0``) of each image, 3×3 per step."""
    out = x.clone()
    for k in range(1, max(_STROKE_STEPS) + 1):
        index = torch.nonzero(steps >= k)[:, 0]
        out[index] = F.max_pool2d(out[index], 3, stride=1, padding=1)
    for k in range(1, -min(_STROKE_STEPS) + 1):
        index = torch.nonzero(steps <= -k)[:, 0]
        out[index] = -F.max_pool2d(-out[index], 3, stride=1, padding=1)
    return out


def _sampling_grid(theta: torch.Tensor, side: int) -> torch.Tensor:
    """``F.affine_grid(theta, [n, 1, side, side], align_corners=False)``, by broadcasting.

    The same pixel-centre coordinates ``(2i + 1)/side − 1`` and the same map
    ``(x, y) ↦ θ [x, y, 1]ᵀ``, without the batched matrix product that is slow on a CPU.
    """
    centres = (2.0 * torch.arange(side, dtype=theta.dtype) + 1.0) / side - 1.0
    xs, ys = centres[None, None, :], centres[None, :, None]
    t = theta[:, :, :, None, None]
    return torch.stack([t[:, i, 0] * xs + t[:, i, 1] * ys + t[:, i, 2] for i in range(2)], dim=-1)


def generate(n: int, seed: int | np.random.SeedSequence) -> tuple[np.ndarray, np.ndarray]:
    """``n`` images ``uint8 [n, 1, 28, 28]`` and balanced labels ``int64 [n]`` from ``seed``."""
    rng = np.random.default_rng(seed)
    stack, _ = glyphs()
    labels = rng.permutation(np.arange(n) % NUM_CLASSES)
    fonts = rng.integers(0, stack.shape[0], n)
    theta = _inverse_affines(rng, n)
    steps = torch.from_numpy(rng.choice(_STROKE_STEPS, n))
    out = np.empty((n, 1, SIZE, SIZE), dtype=np.uint8)
    with torch.no_grad():
        for start in range(0, n, _CHUNK):
            part = slice(start, start + _CHUNK)
            source = stack[torch.from_numpy(fonts[part]), torch.from_numpy(labels[part])]
            source = source[:, None]
            grid = _sampling_grid(theta[part], _CANVAS)
            moved = F.grid_sample(source, grid, mode="bilinear", align_corners=False)
            small = F.avg_pool2d(_stroke(moved, steps[part]), 2)
            out[part] = (small * 255.0).round().clamp(0, 255).to(torch.uint8).numpy()
    return out, labels.astype(np.int64)


def _generate_splits() -> dict[str, np.ndarray]:
    arrays: dict[str, np.ndarray] = {"fonts": np.array(glyphs()[1])}
    for split, size in SPLIT_SIZES.items():
        x, y = generate(size, np.random.SeedSequence([SEED, _SPLIT_STREAM[split]]))
        arrays[f"x_{split}"], arrays[f"y_{split}"] = x, y
    return arrays


@cache
def _cached() -> dict[str, np.ndarray]:
    path = cache_folder() / CACHE_NAME
    if path.exists():
        try:
            with np.load(path, allow_pickle=False) as archive:
                arrays = {k: archive[k] for k in archive.files}
            if set(arrays) >= _KEYS:
                return arrays
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
            pass  # an unreadable or incomplete cache entry is regenerated
    arrays = _generate_splits()
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    write_atomic(path, lambda f: f.write(buffer.getvalue()))
    return arrays


def fontdigits_split(split: str) -> tuple[np.ndarray, np.ndarray]:
    """Images ``uint8 [n, 1, 28, 28]`` and labels ``int64 [n]`` of ``"train"``, ``"test"`` or
    ``"all"`` (train then test), generated and cached on first use."""
    arrays = _cached()
    if split == "all":
        return (
            np.concatenate([arrays["x_train"], arrays["x_test"]]),
            np.concatenate([arrays["y_train"], arrays["y_test"]]),
        )
    if split not in SPLIT_SIZES:
        raise ValueError(f"split must be 'train', 'test' or 'all', got {split!r}")
    return arrays[f"x_{split}"], arrays[f"y_{split}"]


def fonts_used() -> tuple[str, ...]:
    """The font files of the cached set."""
    return tuple(str(f) for f in _cached()["fonts"])
