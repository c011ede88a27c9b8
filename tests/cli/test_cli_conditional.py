"""Conditional runs from the command line: ``sample --condition NAME=VALUE`` (a label, per-sample
labels or a vector from a ``.npy``), ``--guidance-scale`` for guided runs, and ``eval`` on the
data's own labels (conditional ELBO / NLL, class agreement by the digits classifier).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from cli_support import STDLIB

from gendsl.cli import main
from gendsl.data import load_dataset
from gendsl.errors import UsageError
from gendsl.metrics import digits_classifier
from gendsl.run_sampling import parse_conditions
from gendsl.runs import build_model, open_run

torch.set_num_threads(1)

CVAE = """\
model cvae {
  data x : binary[D]
  condition y : label[10]
  latent z : real[4]
  net enc = MLP(hidden = [32])
  net dec = MLP(hidden = [32])
  z ~ Normal(0, 1)
  x | z, y ~ Bernoulli(logits = dec(z, y))
  guide { z | x, y ~ Normal(enc(x, y)) }
  loss elbo
}
"""

VECTOR = """\
model vcond {
  data x : real[2]
  condition c : real[3]
  latent z : real[2]
  net enc = MLP(hidden = [8])
  net dec = MLP(hidden = [8])
  z ~ Normal(0, 1)
  x | z, c ~ Normal(dec(z, c), 1)
  guide { z | x, c ~ Normal(enc(x, c)) }
  loss elbo
}
"""


def _train(spec: Path, out: Path, data: str) -> Path:
    argv = ["train", str(spec), "--data", data, "--out", str(out), "--no-progress"]
    assert main([*argv, "--steps", "3", "--batch-size", "16"]) == 0
    return out


def _sample(run: Path, out: Path, *extra: str) -> np.ndarray:
    assert main(["sample", str(run), "--out", str(out), "--seed", "7", *extra]) == 0
    return np.load(out)


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("conditional")
    (root / "cvae.gen").write_text(CVAE)
    return {
        "cfg": _train(STDLIB / "cfg.gen", root / "cfg", "moons"),
        "classifier_guidance": _train(STDLIB / "classifier_guidance.gen", root / "cg", "moons"),
        "cvae": _train(root / "cvae.gen", root / "cvae", "digits_binary"),
    }


def test_a_label_condition_is_given_on_the_command_line(runs, tmp_path):
    out = tmp_path / "s.npz"
    assert (
        main(["sample", str(runs["cfg"]), "-n", "6", "--condition", "y=1", "--out", str(out)]) == 0
    )
    saved = np.load(out)
    assert saved["samples"].shape == (6, 2) and np.isfinite(saved["samples"]).all()
    assert saved["condition_y"].tolist() == [1] * 6


@pytest.mark.parametrize("name", ["cfg", "cvae"])
def test_per_sample_labels_from_a_npy_route_each_label_to_its_sample(runs, name, tmp_path):
    labels = np.array([0, 1, 1, 0, 1, 0])
    np.save(tmp_path / "labels.npy", labels)
    run = runs[name]
    mixed = _sample(run, tmp_path / "m.npy", "-n", "6", "--condition", f"y={tmp_path}/labels.npy")
    ones = _sample(run, tmp_path / "1.npy", "-n", "6", "--condition", "y=1")
    zeros = _sample(run, tmp_path / "0.npy", "-n", "6", "--condition", "y=0")
    # one seed, one noise per row: row i of the mixed draw is row i of its label's draw
    expected = np.where(labels[:, None] == 1, ones, zeros)
    np.testing.assert_allclose(mixed, expected, rtol=0, atol=1e-5)
    assert not np.allclose(ones, zeros)  # the label matters


@pytest.mark.parametrize(("name", "default"), [("cfg", "3"), ("classifier_guidance", "1")])
def test_guidance_scale_overrides_the_declared_one(runs, name, default, tmp_path):
    run, cond = runs[name], ("--condition", "y=1", "-n", "8")
    plain = _sample(run, tmp_path / "a.npy", *cond)
    same = _sample(run, tmp_path / "b.npy", *cond, "--guidance-scale", default)
    other = _sample(run, tmp_path / "c.npy", *cond, "--guidance-scale", "0")
    assert np.array_equal(plain, same)
    assert not np.allclose(plain, other)


def test_eval_of_a_conditional_vae_uses_the_data_labels(runs, tmp_path, capsys):
    run, n = runs["cvae"], 40
    capsys.readouterr()
    assert main(["eval", str(run), "-n", str(n), "--json"]) == 0
    results = json.loads(capsys.readouterr().out)
    test = load_dataset("digits_binary", split="test")
    x, y = test.x[:n], test.y[:n]

    model, _ = open_run(run)
    with torch.no_grad():
        torch.manual_seed(0)
        own = -float(model.elbo((x, y)).mean())
        torch.manual_seed(0)
        shuffled = -float(model.elbo((x, y.roll(1))).mean())
    assert results["neg_elbo_nats"] == pytest.approx(own, rel=1e-6)
    assert abs(own - shuffled) > 1e-3  # the ELBO is the conditional one

    # class agreement: the samples eval draws for the held-out labels, classified
    np.save(tmp_path / "y.npy", y.numpy())
    assert (
        main(
            [
                "sample",
                str(run),
                "-n",
                str(n),
                "--seed",
                "0",
                "--out",
                str(tmp_path / "e.npy"),
                "--condition",
                f"y={tmp_path}/y.npy",
            ]
        )
        == 0
    )
    drawn = torch.from_numpy(np.load(tmp_path / "e.npy"))
    classifier = digits_classifier()
    with torch.no_grad():
        agree = (classifier(drawn.float().clamp(0, 1)).argmax(-1) == y).float().mean()
        ceiling = (classifier(x.float()).argmax(-1) == y).float().mean()
    assert results["class_agreement"] == pytest.approx(float(agree))
    assert results["class_agreement_data"] == pytest.approx(float(ceiling))
    assert drawn.shape == (n, 64)


def test_a_vector_condition_comes_from_a_npy(tmp_path):
    model = build_model(VECTOR, bindings={})
    np.save(tmp_path / "one.npy", np.array([1.0, 2.0, 3.0]))
    np.save(tmp_path / "rows.npy", np.arange(12.0).reshape(4, 3))
    np.save(tmp_path / "bad.npy", np.zeros(2))
    one = parse_conditions(model, [f"c={tmp_path}/one.npy"], 4)["c"]
    assert one.shape == (4, 3) and one[3].tolist() == [1.0, 2.0, 3.0]
    rows = parse_conditions(model, [f"c={tmp_path}/rows.npy"], 4)["c"]
    assert rows[2].tolist() == [6.0, 7.0, 8.0]
    with pytest.raises(UsageError) as err:
        parse_conditions(model, [f"c={tmp_path}/bad.npy"], 4)
    assert str(err.value) == (
        f"--condition c={tmp_path}/bad.npy: shape [2]; expected [3] (one for every sample) "
        "or [4, 3] (one per sample)"
    )
    samples = model.sample(4, y={"c": rows}, generator=torch.Generator().manual_seed(0))
    assert samples.shape == (4, 2)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ([], "gendsl: error: model cfg is conditional; pass --condition y=LABEL\n"),
        (
            ["--condition", "y=2"],
            "gendsl: error: --condition y=2: y is a label of 2 classes; give an index in 0..1\n",
        ),
        (
            ["--condition", "y=0.5"],
            "gendsl: error: --condition y=0.5: a label is a whole class index\n",
        ),
        (["--condition", "y"], "gendsl: error: --condition expects NAME=VALUE, got 'y'\n"),
        (
            ["--condition", "y=one"],
            "gendsl: error: --condition y=one: expected a number or a .npy file\n",
        ),
    ],
)
def test_a_bad_condition_is_a_usage_error(runs, extra, message, capsys):
    assert main(["sample", str(runs["cfg"]), "-n", "3", *extra]) == 2
    assert capsys.readouterr().err == message


def test_eval_of_a_guided_run_uses_the_guidance_scale_for_nll_and_samples(runs, capsys):
    results = {}
    for scale in ("3", "0"):  # 3: the declared scale
        capsys.readouterr()
        argv = ["eval", str(runs["cfg"]), "-n", "8", "--json", "--guidance-scale", scale]
        assert main(argv) == 0
        results[scale] = json.loads(capsys.readouterr().out)
    assert main(["eval", str(runs["cfg"]), "-n", "8", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == results["3"]
    assert results["0"]["nll_nats"] != results["3"]["nll_nats"]
    assert results["0"]["w2"] != results["3"]["w2"]
