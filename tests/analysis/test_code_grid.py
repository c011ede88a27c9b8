"""The VQ code grid at image size: a ConvNet encoder's ``down = k`` halves the image k times
(van den Oord et al. 2017, Sec. 4.1: 28 -> 7), the checker infers that grid for the code and
the decoder maps it back to the image; what the checker accepts builds, trains and samples."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from gendsl.analysis import check_text, load_checked
from gendsl.errors import SpecErrors
from gendsl.lower import compile_model

torch.set_num_threads(1)

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "vqvae_fontdigits.gen"

VQ28 = """
model vq28 {
  data x : image[1, 28, 28]
  latent e : code[K = 16, dim = 4]
  net enc = ConvNet(channels = [4, 4, 4]DOWN)
  net dec = ConvNet(channels = [4, 4, 4], transpose = trueUP)
  e = quantize(enc(x))
  x | e ~ Normal(dec(e), 0.1)
  loss vq(commitment = 0.25, codebook = loss)
}
"""


def _vq28(down: str = "", up: str = "") -> str:
    return VQ28.replace("DOWN", down).replace("UP", up)


def test_the_example_has_a_7x7_grid_of_codes():
    m = load_checked(str(EXAMPLE))
    assert m.nets["enc"].out_shape == (8, 7, 7)
    assert m.nets["dec"].in_shapes == ((8, 7, 7),) and m.nets["dec"].out_shape == (1, 28, 28)


@pytest.mark.parametrize(
    ("down", "up", "grid"),
    [
        ("", "", (28, 28)),  # no option: the grid keeps the image size, as before
        (", down = 0", "", (28, 28)),
        (", down = 1", "", (14, 14)),
        (", down = 3", ", up = 3", (4, 4)),  # 7 is padded: 28 -> 14 -> 7 -> 4
        (", down = 3", "", (4, 4)),  # the decoder infers its three padded stages
    ],
)
def test_checked_grid_builds_trains_and_samples_28px(down, up, grid):
    (m,) = check_text(_vq28(down, up))
    assert m.nets["enc"].out_shape == (4, *grid) and m.nets["dec"].in_shapes == ((4, *grid),)
    torch.manual_seed(0)
    model = compile_model(m, bindings={})
    x = torch.rand(3, 1, 28, 28)
    loss = model.loss(x)
    loss.backward()
    assert torch.isfinite(loss)
    assert model.quantizer.last["index"].shape == (3, *grid)
    s = model.sample(2, generator=torch.Generator().manual_seed(0))
    assert s.shape == (2, 1, 28, 28)


def test_a_unet_encoder_keeps_the_image_size():
    text = _vq28().replace("ConvNet(channels = [4, 4, 4])", "UNet(channels = [4, 8])")
    (m,) = check_text(text)
    assert m.nets["enc"].out_shape == (4, 28, 28)


def test_a_decoder_that_does_not_reach_the_image_is_a_spec_error():
    with pytest.raises(SpecErrors) as err:
        check_text(_vq28(", down = 2", ", up = 3"))
    (e,) = err.value.errors
    assert e.message == (
        "network 'dec': up = 3 maps spatial size (4, 4) to (28, 28), but the input is (7, 7); "
        "change up"
    )
    assert (e.span.line, e.span.column) == (8, 18)
