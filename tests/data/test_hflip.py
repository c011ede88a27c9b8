"""Random horizontal flips: the declared train { hflip = true } augmentation."""

from __future__ import annotations

from pathlib import Path

import torch

from gendsl.analysis import check_text
from gendsl.cli import main
from gendsl.data import random_hflip
from gendsl.train import sample_batch


def test_each_image_is_itself_or_its_mirror() -> None:
    x = torch.arange(1000 * 2 * 3 * 4, dtype=torch.float32).reshape(1000, 2, 3, 4)
    out = random_hflip(x, generator=torch.Generator().manual_seed(0))
    same = (out == x).flatten(1).all(1)
    mirrored = (out == x.flip(-1)).flatten(1).all(1)
    assert bool((same ^ mirrored).all())  # no image is both (columns differ), each is one
    assert 400 < int(mirrored.sum()) < 600  # Binomial(1000, 1/2): 500 ± 16 (σ)
    again = random_hflip(x, generator=torch.Generator().manual_seed(0))
    assert torch.equal(out, again)


def test_sample_batch_flips_only_the_images_and_keeps_the_rows() -> None:
    x = torch.randint(0, 256, (50, 1, 4, 4), dtype=torch.uint8)
    y = torch.arange(50)
    plain_x, plain_y = sample_batch((x, y), 64, torch.Generator().manual_seed(3))
    flip_x, flip_y = sample_batch((x, y), 64, torch.Generator().manual_seed(3), hflip=True)
    assert torch.equal(plain_y, flip_y) and flip_x.dtype == torch.float32
    same = (flip_x == plain_x).flatten(1).all(1)
    mirrored = (flip_x == plain_x.flip(-1)).flatten(1).all(1)
    assert bool((same | mirrored).all()) and 0 < int((~same).sum()) < 64


def test_the_key_checks_and_refuses_non_image_data(tmp_path: Path, capsys) -> None:
    spec = """\
model mirrored {
  data x : real[D]
  latent z : real[D]
  z ~ Normal(0, 1)
  flow f { affine_coupling(mask = alternate, net = MLP(hidden = [8])) }
  x = f(z)
  loss nll
  train {
    steps = 2
    hflip = true
  }
}
"""
    (checked,) = check_text(spec, "mirrored.gen")
    assert checked.train["hflip"] is True
    (tmp_path / "m.gen").write_text(spec)
    out = tmp_path / "run"
    code = main(["train", str(tmp_path / "m.gen"), "--data", "moons", "--out", str(out)])
    assert code == 1 and not out.exists()
    assert capsys.readouterr().err == (
        "error: train { hflip = true } mirrors images, but moons holds samples of shape [2]; "
        "declare the data as image[C, H, W] or drop hflip\n"
    )
