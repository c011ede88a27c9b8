"""examples/cross_attention_cfg.gen from the command line: 8x8 digits with caption embeddings
(gendsl.data.captions) in an .npz, trained a few steps, sampled with given embeddings and
guidance; the derivation names the conditioning; bad data is a located error."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from cli_support import REPO

from gendsl.cli import main
from gendsl.data import load_dataset
from gendsl.data.captions import caption_embeddings, write_conditioned

torch.set_num_threads(1)

SPEC = REPO / "examples" / "cross_attention_cfg.gen"


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("xattn")
    digits = load_dataset("digits_image", split="all", n=64)
    y = digits.y.numpy()
    data = write_conditioned(
        root / "captions.npz", digits.x.numpy(), caption_embeddings(y, dim=8), y
    )
    argv = ["train", str(SPEC), "--data", str(data), "--out", str(root / "run"), "--no-progress"]
    assert main([*argv, "--steps", "2", "--batch-size", "8"]) == 0
    return root / "run", data


def _sample(run: Path, out: Path, *extra: str) -> np.ndarray:
    argv = ["sample", str(run), "-n", "3", "--seed", "5", "--out", str(out), *extra]
    assert main([*argv, "--steps", "3"]) == 0
    return np.load(out)


def test_samples_with_given_embeddings_and_guidance(run, tmp_path):
    path, _ = run
    seven = tmp_path / "seven.npy"
    np.save(seven, caption_embeddings([7], dim=8)[0])
    plain = _sample(path, tmp_path / "a.npy", "--condition", f"c={seven}")
    assert plain.shape == (3, 1, 8, 8) and np.isfinite(plain).all()
    rows = tmp_path / "rows.npz"
    np.savez(rows, c=np.repeat(np.load(seven)[None], 3, axis=0))
    same = _sample(path, tmp_path / "b.npy", "--condition", f"c={rows}")
    np.testing.assert_allclose(same, plain, rtol=1e-5, atol=1e-5)
    unguided = _sample(
        path, tmp_path / "c.npy", "--condition", f"c={seven}", "--guidance-scale", "0"
    )
    assert unguided.shape == plain.shape and not np.allclose(unguided, plain)


def test_the_checkpoint_holds_the_null_embedding(run):
    from gendsl.runs import open_run

    model, _ = open_run(run[0])
    assert tuple(model.null_embedding.shape) == (3, 8)


def test_derive_names_the_cross_attention_and_the_null_embedding(capsys):
    assert main(["derive", str(SPEC)]) == 0
    out = capsys.readouterr().out
    assert "cross-attention" in out and "null embedding" in out


def test_data_without_conditions_is_a_located_error(tmp_path, capsys):
    argv = ["train", str(SPEC), "--data", "digits_image", "--out", str(tmp_path / "r")]
    assert main([*argv, "--steps", "1"]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"{SPEC}:9:13: error: condition c is declared real[L, E] but ")
    assert "digits_image has no conditions; train on an .npz holding the arrays x and c" in err
    assert not (tmp_path / "r").exists()


FILM = """\
model film_cfg {
  data x : real[2]
  condition c : real[E]
  let beta(t) = 0.1 + 19.9 * t
  sde dx = -0.5 * beta(t) * x * dt + sqrt(beta(t)) * dw, t in [0, 1]
  net eps = MLP(hidden = [32, 32], film = true, time = fourier)
  predict eps = eps(x_t, t, c)
  loss dsm
  guidance classifier_free(scale = 1, drop = 0.2)
  sample with ddim(steps = 4)
}
"""


def test_a_pooled_embedding_modulates_an_mlp_by_film(tmp_path, capsys):
    moons = load_dataset("moons", n=64)
    table = np.random.default_rng(0).standard_normal((2, 5)).astype(np.float32)
    data = write_conditioned(tmp_path / "moons.npz", moons.x.numpy(), table[moons.y.numpy()])
    (tmp_path / "film.gen").write_text(FILM)
    argv = ["train", str(tmp_path / "film.gen"), "--data", str(data), "--no-progress"]
    assert main([*argv, "--out", str(tmp_path / "run"), "--steps", "2", "--batch-size", "8"]) == 0
    np.save(tmp_path / "c.npy", table[1])
    drawn = _sample(tmp_path / "run", tmp_path / "s.npy", "--condition", f"c={tmp_path}/c.npy")
    assert drawn.shape == (3, 2) and np.isfinite(drawn).all()
    capsys.readouterr()
    assert main(["derive", str(tmp_path / "film.gen")]) == 0
    assert "condition c: real[E]: modulates eps by FiLM" in capsys.readouterr().out


MATCHING = """\
model fm_xattn {
  data x1 : image[1, 8, 8]
  latent x0 : image[1, 8, 8]
  condition c : real[L, E]
  x0 ~ Normal(0, 1)
  couple x0, x1 by independent
  path x_t = (1 - t) * x0 + t * x1
  net v = UNet(channels = [8, 16], cross_attention = [4], time = fourier)
  predict velocity = v(x_t, t, c)
  loss flow_matching
  sample with ode(method = euler, steps = 3)
}
"""


def test_flow_matching_reads_caption_embeddings_by_cross_attention(run, tmp_path, capsys):
    _, data = run
    (tmp_path / "fm.gen").write_text(MATCHING)
    argv = ["train", str(tmp_path / "fm.gen"), "--data", str(data), "--no-progress"]
    assert main([*argv, "--out", str(tmp_path / "run"), "--steps", "2", "--batch-size", "8"]) == 0
    np.save(tmp_path / "c.npy", caption_embeddings([3], dim=8)[0])
    drawn = _sample(tmp_path / "run", tmp_path / "s.npy", "--condition", f"c={tmp_path}/c.npy")
    assert drawn.shape == (3, 1, 8, 8) and np.isfinite(drawn).all()
    capsys.readouterr()
    assert main(["derive", str(tmp_path / "fm.gen")]) == 0
    assert (
        "condition c: real[L, E]: cross-attention in v at resolutions [4]"
        in capsys.readouterr().out
    )
