"""The digits classifier (accuracy, cache) and digits-FD (real vs real far below real vs noise)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from gendsl.data import load_dataset
from gendsl.metrics import digits_classifier, digits_fd, fid_from_features
from gendsl.metrics.digits_fd import CACHE_NAME, DigitsClassifier, cache_folder


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A private GENDSL_CACHE holding a classifier trained once for this module."""
    folder = tmp_path_factory.mktemp("gendsl-cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("GENDSL_CACHE", str(folder))
        torch.set_num_threads(1)
        digits_classifier()
        yield folder


def test_cache_location_and_atomic_write(cache: Path) -> None:
    assert cache_folder() == cache
    assert sorted(p.name for p in cache.iterdir()) == [CACHE_NAME]
    state = torch.load(cache / CACHE_NAME, weights_only=True)
    assert set(state) == set(DigitsClassifier().state_dict())


def test_classifier_accuracy_on_test_split(cache: Path) -> None:
    test = load_dataset("digits", split="test")
    model = digits_classifier()
    accuracy = float((model(test.x).argmax(dim=1) == test.y).float().mean())
    assert accuracy > 0.9, accuracy
    image_logits = model(load_dataset("digits_image", split="test").x)
    torch.testing.assert_close(image_logits, model(test.x))


def test_classifier_is_read_from_the_cache(cache: Path) -> None:
    path = cache / CACHE_NAME
    original = {k: v.clone() for k, v in digits_classifier().state_dict().items()}
    marked = dict(original, **{"head.bias": torch.arange(10.0) * 100})
    torch.save(marked, path)
    try:
        torch.testing.assert_close(digits_classifier().head.bias, marked["head.bias"])
    finally:
        torch.save(original, path)


def test_unreadable_cache_is_retrained_reproducibly(cache: Path) -> None:
    path = cache / CACHE_NAME
    original = torch.load(path, weights_only=True)
    path.write_bytes(b"not a checkpoint")
    retrained = digits_classifier().state_dict()
    for name, value in original.items():
        torch.testing.assert_close(retrained[name], value)
    torch.testing.assert_close(
        torch.load(path, weights_only=True)["head.bias"], original["head.bias"]
    )


def test_digits_fd_real_far_below_noise(cache: Path) -> None:
    test = load_dataset("digits", split="test").x
    g = torch.Generator().manual_seed(0)
    real = digits_fd(test)
    noise = digits_fd(torch.rand(300, 64, generator=g))
    blurred = digits_fd(0.5 * test + 0.5 * torch.rand(300, 64, generator=g))
    assert real < 0.05 * noise
    assert real < blurred < noise
    assert digits_fd(test.reshape(300, 1, 8, 8), reference="test") == pytest.approx(0.0, abs=1e-6)


def test_digits_fd_with_another_extractor(cache: Path) -> None:
    test = load_dataset("digits", split="test").x
    train = load_dataset("digits").x
    value = digits_fd(test, feature_extractor=lambda x: x)
    assert value == pytest.approx(fid_from_features(train, test), rel=1e-9)
