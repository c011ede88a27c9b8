"""--features: Inception-v3 (FID, IS) and LPIPS from local weights files; plumbing shown with a
small stand-in network saved to a temporary file."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gendsl.errors import UsageError
from gendsl.metrics import feature_networks as fn
from gendsl.metrics import fid_from_features, inception_score
from gendsl.metrics.inception import FIDInceptionV3, InceptionE, inception_inputs
from gendsl.metrics.lpips import LPIPS, mean_pair_distance


class StandIn(nn.Module):
    """A tiny network with the Inception interface: ``features`` and bias-free ``logits``."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 6, 3)
        self.fc = nn.Linear(6, 4)

    def features(self, x: Tensor) -> Tensor:
        return F.adaptive_avg_pool2d(torch.tanh(self.conv(x)), 1).flatten(1)

    def logits(self, features: Tensor) -> Tensor:
        return features @ self.fc.weight.T


@pytest.fixture
def stand_in(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[StandIn, Path]:
    monkeypatch.setitem(fn.NETWORKS, "inception", StandIn)
    torch.manual_seed(0)
    network = StandIn()
    torch.save(network.state_dict(), tmp_path / "weights.pt")
    return network, tmp_path / "weights.pt"


def test_weights_are_loaded_from_the_file_and_used(stand_in) -> None:
    network, path = stand_in
    loaded = fn.load_network("inception", fn.parse_features([f"inception={path}"])["inception"])
    g = torch.Generator().manual_seed(1)
    real, fake = torch.rand(40, 1, 8, 8, generator=g), torch.rand(40, 1, 8, 8, generator=g) ** 2
    got = fn.feature_metrics({"inception": loaded}, real, fake, splits=4)
    with torch.no_grad():
        f_real, f_fake = network.features(real), network.features(fake)
        probs = network.logits(f_fake).softmax(1)
    assert got["fid"] == pytest.approx(fid_from_features(f_real, f_fake), rel=1e-9)
    score = inception_score(probs, splits=4)
    assert (got["is"], got["is_stderr"]) == pytest.approx((score.mean, score.stderr), rel=1e-9)


def test_bad_weights_and_flags(stand_in, tmp_path: Path) -> None:
    torch.save(
        {"conv.weight": torch.zeros(6, 1, 3, 3), "other": torch.zeros(1)}, tmp_path / "w.pt"
    )
    with pytest.raises(UsageError) as info:
        fn.load_network("inception", tmp_path / "w.pt")
    assert str(info.value) == (
        f"{tmp_path / 'w.pt'} does not hold the weights of the inception network: entries "
        "3 missing (conv.bias, fc.bias, fc.weight); 1 unexpected (other)"
    )
    torch.save({"net": nn.ReLU()}, tmp_path / "pickled.pt")
    with pytest.raises(UsageError, match="not a weights file that loads safely"):
        fn.load_network("inception", tmp_path / "pickled.pt")
    with pytest.raises(UsageError, match="--features expects NAME=PATH with NAME one of"):
        fn.parse_features(["vgg=x.pt"])
    with pytest.raises(UsageError, match=r"--features lpips: no weights file at nothing\.pt"):
        fn.parse_features(["lpips=nothing.pt"])
    with pytest.raises(UsageError, match=r"needs images \[n, C, H, W\]"):
        fn.feature_metrics({}, torch.zeros(4, 2), torch.zeros(4, 2))


def test_fid_inception_layout_and_shapes() -> None:
    """The layout of pytorch-fid's weights: torchvision names, 1008 classes, the FID blocks."""
    torch.manual_seed(0)
    network = FIDInceptionV3().eval()
    state = network.state_dict()
    shapes = {
        "Conv2d_1a_3x3.conv.weight": (32, 3, 3, 3),
        "Conv2d_4a_3x3.bn.running_var": (192,),
        "Mixed_5b.branch_pool.conv.weight": (32, 192, 1, 1),
        "Mixed_6e.branch7x7dbl_5.conv.weight": (192, 192, 1, 7),
        "Mixed_7a.branch3x3_2.conv.weight": (320, 192, 3, 3),
        "Mixed_7c.branch3x3dbl_3b.conv.weight": (384, 384, 3, 1),
        "fc.weight": (1008, 2048),
    }
    assert {k: tuple(state[k].shape) for k in shapes} == shapes
    assert not any(k.startswith("AuxLogits") for k in state)
    with torch.no_grad():
        features = network.features(torch.rand(1, 1, 28, 28))
    assert features.shape == (1, 2048) and network.logits(features).shape == (1, 1008)
    torch.testing.assert_close(network.logits(features), features @ state["fc.weight"].T)
    # inputs: grey repeated, 299×299, [0, 1] → [-1, 1]
    x = inception_inputs(torch.ones(1, 1, 28, 28))
    torch.testing.assert_close(x, torch.ones(1, 3, 299, 299))
    assert inception_inputs(torch.zeros(1, 3, 32, 32)).unique().tolist() == [-1.0]
    # TensorFlow pooling: averages leave the padding out, Mixed_7c takes the maximum
    block = InceptionE(4, max_pool=False).requires_grad_(False)
    ones = torch.ones(1, 4, 5, 5)
    pooled = {}
    block.branch_pool = nn.Identity()
    for flag in (False, True):
        block.max_pool = flag
        pooled[flag] = block(ones)[:, -4:]
    assert bool((pooled[False] == 1).all()) and bool((pooled[True] == 1).all())
    block.max_pool = False
    ramp = torch.arange(25.0).reshape(1, 1, 5, 5).expand(1, 4, 5, 5)
    assert float(block(ramp)[0, -1, 0, 0]) == pytest.approx((0 + 1 + 5 + 6) / 4)
    block.max_pool = True
    assert float(block(ramp)[0, -1, 0, 0]) == 6.0


def test_lpips_layout_and_formula(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = LPIPS().eval()
    keys = set(model.state_dict())
    for k in ("net.slice1.0.weight", "net.slice2.3.weight", "net.slice3.6.weight",
              "net.slice4.8.weight", "net.slice5.10.bias", "lin4.model.1.weight",
              "scaling_layer.shift"):  # fmt: skip
        assert k in keys
    g = torch.Generator().manual_seed(2)
    x, y = torch.rand(3, 3, 64, 64, generator=g), torch.rand(3, 3, 64, 64, generator=g)
    with torch.no_grad():
        assert torch.equal(model(x, x), torch.zeros(3))
        torch.testing.assert_close(model(x, y), model(y, x))
        # only the first layer weighted, by ones: d = mean_hw Σ_c (f̂(x) − f̂(y))², recomputed
        for k in range(5):
            getattr(model, f"lin{k}").model[1].weight.fill_(1.0 if k == 0 else 0.0)
        conv = model.net.slice1[0]

        def first(img: Tensor) -> Tensor:
            scaled = (2 * img - 1 - model.scaling_layer.shift) / model.scaling_layer.scale
            f = F.relu(F.conv2d(scaled, conv.weight, conv.bias, stride=4, padding=2))
            return f / (f.norm(dim=1, keepdim=True) + 1e-10)

        expected = (first(x) - first(y)).square().sum(1).mean(dim=(1, 2))
        torch.testing.assert_close(model(x, y), expected)
    # a state dict with lpips' duplicate 'lins' entries loads; diversity of pairs
    state = model.state_dict()
    state.update({f"lins.{k}.model.1.weight": state[f"lin{k}.model.1.weight"] for k in range(5)})
    torch.save(state, tmp_path / "lpips.pt")
    loaded = fn.load_network("lpips", tmp_path / "lpips.pt")
    grey = torch.rand(5, 1, 28, 28, generator=g)
    with torch.no_grad():
        pairs = torch.stack([model(grey[i : i + 1], grey[i + 1 : i + 2])[0] for i in (0, 2)])
    assert mean_pair_distance(loaded, grey) == pytest.approx(float(pairs.mean()), rel=1e-6)


TINY = """\
model tiny_gan {
  data x : image[1, 28, 28]
  latent z : real[4]
  net G = ConvNet(channels = [8, 4], transpose = true)
  net D = ConvNet(channels = [4, 8])
  z ~ Normal(0, 1)
  x = G(z)
  critic D
  loss gan(form = nonsaturating)
  train {
    steps = 2
    batch = 4
  }
}
"""


def test_gendsl_eval_features(stand_in, tmp_path: Path, capsys) -> None:
    import json

    import numpy as np

    from gendsl.cli import main

    _, path = stand_in
    images = np.random.default_rng(0).integers(0, 256, (40, 1, 28, 28), dtype=np.uint8)
    np.save(tmp_path / "images.npy", images)
    (tmp_path / "tiny.gen").write_text(TINY)
    run = str(tmp_path / "run")
    data = str(tmp_path / "images.npy")
    assert main(["train", str(tmp_path / "tiny.gen"), "--data", data, "--out", run]) == 0
    capsys.readouterr()
    assert main(["eval", run, "-n", "4", "--json", "--features", f"inception={path}"]) == 0
    results = json.loads(capsys.readouterr().out)
    assert results["fid"] >= 0 and 1 <= results["is"] <= 4 and "is_stderr" in results
    code = main(["eval", run, "--features", f"inception={tmp_path / 'missing.pt'}"])
    assert code == 2
    assert "--features inception: no weights file at" in capsys.readouterr().err
