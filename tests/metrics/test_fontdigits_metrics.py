"""fontdigits-FD/IS and precision/recall through a classifier trained briefly for the test."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from gendsl.data import load_dataset
from gendsl.metrics import fontdigits_fd, fontdigits_is, fontdigits_scores, inception_score
from gendsl.metrics import fontdigits_metrics as module
from gendsl.metrics.classifier import cached_classifier
from gendsl.metrics.frechet import fid_from_features


@pytest.fixture(scope="module")
def quick(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The recipe at 100 steps in a private cache (the shipped one trains 600)."""
    folder = tmp_path_factory.mktemp("gendsl-cache")
    load_dataset("fontdigits")  # the images, from the session's cache (kept in memory)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("GENDSL_CACHE", str(folder))
        patch.setattr(module, "RECIPE", replace(module.RECIPE, steps=100))
        torch.set_num_threads(1)
        module.fontdigits_classifier()
        yield folder


def test_classifier_is_cached_and_classifies(quick: Path) -> None:
    assert [p.name for p in quick.iterdir()] == [module.RECIPE.cache_name]
    model = module.fontdigits_classifier()
    test = load_dataset("fontdigits", split="test", n=1000)
    with torch.no_grad():
        accuracy = float((model(test.x).argmax(1) == test.y).float().mean())
    assert accuracy > 0.8, accuracy
    torch.testing.assert_close(
        model.state_dict()["head.bias"], cached_classifier(module.RECIPE).state_dict()["head.bias"]
    )


def test_scores_rank_real_above_noise(quick: Path) -> None:
    test = load_dataset("fontdigits", split="test").x
    real, other = test[:1000], test[5000:6000]
    noise = torch.rand(1000, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    real_scores = fontdigits_scores(real, reference=other)
    noise_scores = fontdigits_scores(noise, reference=other)
    assert real_scores["fontdigits_fd"] < 0.1 * noise_scores["fontdigits_fd"]
    assert real_scores["fontdigits_is"] > 2 * noise_scores["fontdigits_is"]
    assert real_scores["fontdigits_precision"] > 0.5 and real_scores["fontdigits_recall"] > 0.5
    assert noise_scores["fontdigits_recall"] < 0.05  # noise covers none of the real digits
    assert fontdigits_fd(real, reference=real.float() / 255) == pytest.approx(0.0, abs=1e-6)


def test_scores_are_the_generic_formulas_on_the_classifier(quick: Path) -> None:
    x = load_dataset("fontdigits", split="test", n=400).x
    ref = load_dataset("fontdigits", n=300).x
    model = module.fontdigits_classifier()
    with torch.no_grad():
        probs = model(x).softmax(1)
        features_x, features_ref = model.features(x), model.features(ref)
    assert fontdigits_is(x, splits=4) == pytest.approx(inception_score(probs, splits=4), rel=1e-6)
    assert fontdigits_fd(x, reference=ref) == pytest.approx(
        fid_from_features(features_ref, features_x), rel=1e-6
    )
    flat = x.reshape(400, 784).float() / 255  # flat float samples score like the images
    assert fontdigits_scores(flat, reference=ref) == pytest.approx(
        fontdigits_scores(x, reference=ref)
    )


def _train_and_eval(tmp_path: Path, capsys, spec_text: str, n: int) -> dict[str, float]:
    """``gendsl train`` (2 steps on fontdigits) and ``gendsl eval -n N --json`` of a spec."""
    import json

    from gendsl.cli import main

    spec = tmp_path / "spec.gen"
    spec.write_text(spec_text)
    run = str(tmp_path / "run")
    assert main(["train", str(spec), "--data", "fontdigits", "--out", run, "--no-progress"]) == 0
    capsys.readouterr()
    assert main(["eval", run, "-n", str(n), "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_gendsl_eval_reports_them_on_fontdigits(quick: Path, tmp_path: Path, capsys) -> None:
    results = _train_and_eval(
        tmp_path,
        capsys,
        "model tiny_gan {\n  data x : image[1, 28, 28]\n  latent z : real[4]\n"
        "  net G = ConvNet(channels = [8, 4], transpose = true)\n"
        "  net D = ConvNet(channels = [4, 8])\n  z ~ Normal(0, 1)\n  x = G(z)\n  critic D\n"
        "  loss gan(form = nonsaturating)\n  train {\n    steps = 2\n    batch = 4\n  }\n}\n",
        20,
    )
    keys = ("fontdigits_fd", "fontdigits_is", "fontdigits_is_stderr", "fontdigits_precision")
    assert all(k in results for k in keys) and 1.0 <= results["fontdigits_is"] <= 10.0


def test_gendsl_eval_reports_class_agreement_on_fontdigits(
    quick: Path, tmp_path: Path, capsys
) -> None:
    """A label-conditioned model on fontdigits: its samples and the held-out digits are read by
    the fontdigits classifier (the ceiling is its accuracy on those test digits)."""
    results = _train_and_eval(
        tmp_path,
        capsys,
        "model tiny_cgan {\n  data x : image[1, 28, 28]\n  condition y : label[10]\n"
        "  latent z : real[4]\n  net G = MLP(hidden = [16])\n"
        "  net D = MLP(hidden = [16], projection = true)\n  z ~ Normal(0, 1)\n"
        "  x = G(z, y)\n  critic D(x, y)\n  loss hinge\n"
        "  train {\n    steps = 2\n    batch = 4\n  }\n}\n",
        40,
    )
    test = load_dataset("fontdigits", split="test")  # eval's held-out: its first n
    with torch.no_grad():
        said = module.fontdigits_classifier()(test.x[:40]).argmax(1)
    ceiling = float((said == test.y[:40]).float().mean())
    assert results["class_agreement_data"] == pytest.approx(ceiling)
    assert 0.0 <= results["class_agreement"] <= 1.0
