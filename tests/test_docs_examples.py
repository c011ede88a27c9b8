"""Every whole spec of docs/language.md runs: each code block fenced as ``gen`` (except the
diagnostics' bad specs) is checked, compiled and trained for one step, on a bundled data set
that fits its data variable; an unmarked block that is a whole model is refused (it would
escape this test)."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pytest

import gendsl
from gendsl.cli import main

ROOT = Path(__file__).resolve().parent.parent
LANGUAGE = (ROOT / "docs" / "language.md").read_text()

#: The bundled data set a documented model trains on, by its data variable's kind.
DATA = {"real": "moons", "binary": "digits_binary", "image": "digits_image"}


def _blocks() -> list[tuple[int, str, str]]:
    """(line, fence language, text) of every code block."""
    return [
        (LANGUAGE[: m.start()].count("\n") + 1, m.group(2), m.group(3))
        for m in re.finditer(r"(<!-- diagnostic -->\s*)?```(\w*)\n(.*?)```", LANGUAGE, re.S)
        if not m.group(1)
    ]


SPECS = [(line, text) for line, lang, text in _blocks() if lang == "gen"]


def test_whole_models_are_marked():
    unmarked = [
        line
        for line, lang, text in _blocks()
        if lang == "" and re.match(r"(#.*\n)*(import|model) ", text)
    ]
    assert not unmarked, f"whole specs in unmarked blocks at lines {unmarked}: fence them as gen"
    assert len(SPECS) >= 4


def _data_for(var, tmp_path: Path) -> str:
    """A bundled set that fits ``var``; for images of another size than the bundled 8x8 digits,
    a small file of random uint8 images of the declared shape (one step only has to run)."""
    shape = tuple(var.type.shape)
    if var.type.kind != "image" or shape == (1, 8, 8):
        return DATA[var.type.kind]
    images = np.random.default_rng(0).integers(0, 256, (32, *shape), dtype=np.uint8)
    path = tmp_path / f"images_{'x'.join(map(str, shape))}.npy"
    np.save(path, images)
    return str(path)


def _captions(tmp_path: Path) -> str:
    """The 8x8 digits with caption embeddings, as examples/digit_captions.py writes them."""
    from gendsl.data import load_dataset
    from gendsl.data.captions import caption_embeddings, write_conditioned

    digits = load_dataset("digits_image", split="all")
    y = digits.y.numpy()
    return str(
        write_conditioned(tmp_path / "captions.npz", digits.x.numpy(), caption_embeddings(y), y)
    )


def _train_one_step(path: Path, name: str, data: list[str], out: Path) -> None:
    argv = ["train", str(path), "--model", name, "--steps", "1", "--batch-size", "16"]
    code = main([*argv, *data, "--out", str(out / "runs" / name)])
    assert code == 0, (path, name)


@pytest.mark.parametrize(("line", "text"), SPECS, ids=[f"line{line}" for line, _ in SPECS])
def test_documented_spec_checks_compiles_and_trains(line, text, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a documented `use x = run("runs/NAME")` names an earlier model
    spec = tmp_path / "spec.gen"
    spec.write_text(text)
    names = re.findall(r"^model (\w+)", text, re.M)
    assert names, f"line {line}: no model"
    for name in names:
        checked = gendsl.check(str(spec), name)
        *source, data = checked.observed_vars()
        kinds = {v.type.kind for v in checked.condition_vars()}
        if "real" in kinds:  # embedding conditions: the caption embeddings of the digits
            args = ["--data", _captions(tmp_path)]
        else:
            args = ["--data", "digits" if "label" in kinds else _data_for(data, tmp_path)]
        if source:  # transport between two data sets: the first data variable is the source
            args += ["--source-data", "8gaussians"]
        _train_one_step(spec, name, args, tmp_path)
        metrics = (tmp_path / "runs" / name / "metrics.jsonl").read_text().splitlines()
        assert math.isfinite(json.loads(metrics[-1])["loss"]), (line, name, metrics[-1])
