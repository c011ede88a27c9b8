"""A run is never destroyed by accident.

``gendsl train`` into a folder that holds a run needs ``--resume`` (same spec, same data) or
``--overwrite``; a refused command leaves every file of the folder byte for byte as it was
(compared by SHA-256 of every file, hidden temporaries included); the checkpoint holds every
imported file, so a run samples the same after its sources are edited or deleted.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from cli_support import tiny_diffusion

from gendsl.cli import main

torch.set_num_threads(1)

BASE = tiny_diffusion(hidden=8, steps=4, batch=8).replace("model tiny_vp", "model base_vp")
#: A spec whose models extend one from another file (in a subfolder); the last is trained.
MAIN = (
    'import "parts/base.gen"\n\nmodel other extends base_vp {\n}\n\n'
    "model child extends base_vp {\n  sample with ddim(steps = 5)\n}\n"
)


def _tree(folder: Path) -> dict[str, str]:
    """SHA-256 of every file under ``folder`` (hidden ones too), by relative path."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def _train(spec: Path, out: Path, *extra: str) -> int:
    return main(["train", str(spec), "--out", str(out), "--no-progress", *extra])


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, Path]:
    """A spec importing another, and a run of it (4 steps on moons)."""
    root = tmp_path_factory.mktemp("project")
    (root / "parts").mkdir()
    (root / "parts" / "base.gen").write_text(BASE)
    spec = root / "child.gen"
    spec.write_text(MAIN)
    run = root / "run"
    assert _train(spec, run, "--data", "moons") == 0
    return spec, run


@pytest.fixture
def project(trained, tmp_path) -> tuple[Path, Path]:
    """A private copy of the spec files and the run."""
    spec, run = trained
    shutil.copytree(spec.parent, tmp_path / "project")
    return tmp_path / "project" / spec.name, tmp_path / "project" / run.name


def test_the_checkpoint_holds_every_imported_file_by_content(project):
    _, run = project
    state = torch.load(run / "checkpoint.pt", map_location="cpu", weights_only=True)
    assert state["config"]["sources"] == {
        "main": "child.gen",
        "files": {"child.gen": MAIN, "parts/base.gen": BASE},
    }


REFUSALS = [
    (
        ["--data", "moons"],
        2,
        "gendsl: error: {run} holds a run already; pass --resume to continue it, --overwrite "
        "to replace it, or --out to train into another folder\n",
    ),
    (
        ["--data", "moons", "--steps", "-5"],
        2,
        "gendsl: error: --steps must be at least 1, got -5\n",
    ),
    (
        ["--resume", "--steps", "-5"],
        2,
        "gendsl: error: --steps must be at least 1, got -5\n",
    ),
    (
        ["--resume", "--data", "circles"],
        2,
        "gendsl: error: --resume: {run} was trained with --data moons, not circles; drop --data "
        "to continue the run, or train a new one (--out)\n",
    ),
    (
        ["--resume", "--seed", "3"],
        2,
        "gendsl: error: --resume: {run} was trained with --seed 0, not 3; drop --seed to "
        "continue the run, or train a new one (--out)\n",
    ),
    (
        ["--resume", "--model", "other"],
        2,
        "gendsl: error: --resume: {run} is a run of model child, not other; pass --model "
        "child to continue it\n",
    ),
    (
        ["--resume", "--overwrite"],
        2,
        "gendsl: error: --resume continues a run and --overwrite replaces it; pass one\n",
    ),
    (
        ["--resume", "--lr", "0.1"],
        2,
        "gendsl: error: --lr cannot change on --resume: the optimiser state, learning rate "
        "included, comes from the checkpoint\n",
    ),
    (["--data", "no_such_data", "--overwrite"], 2, "no_such_data"),
    (
        ["--data", "moons", "--overwrite", "--batch-size", "0"],
        2,
        "--batch-size must be at least 1",
    ),
]


@pytest.mark.parametrize(("argv", "code", "message"), REFUSALS)
def test_a_refused_train_leaves_the_run_byte_identical(project, argv, code, message, capsys):
    spec, run = project
    before = _tree(run)
    assert _train(spec, run, *argv) == code
    err = capsys.readouterr().err
    expected = message.format(run=run)
    assert err == expected if expected.endswith("\n") else expected in err
    assert _tree(run) == before


def test_another_model_into_a_run_folder_is_refused(project, tmp_path, capsys):
    _, run = project
    other = tmp_path / "other.gen"
    other.write_text(tiny_diffusion(hidden=8, steps=2, batch=8))
    before = _tree(run)
    assert _train(other, run, "--data", "moons") == 2
    assert "holds a run already" in capsys.readouterr().err
    assert _tree(run) == before


def test_resume_of_an_edited_import_shows_the_diff_and_exits_1(project, capsys):
    spec, run = project
    base = spec.parent / "parts" / "base.gen"
    base.write_text(base.read_text().replace("lr = 0.002", "lr = 0.005"))
    before = _tree(run)
    assert _train(spec, run, "--resume") == 1
    err = capsys.readouterr().err
    assert err.startswith(
        f"error: cannot resume {run}: the spec differs from the one the run was trained from\n"
        "--- trained/parts/base.gen\n+++ now/parts/base.gen\n@@ -12,3 +12,3 @@\n"
        "     batch = 8\n-    lr = 0.002\n+    lr = 0.005\n   }\n"
    ), err
    assert err.endswith(
        "undo the edit to resume, or train into a new folder (--out) or with --overwrite\n"
    )
    assert _tree(run) == before


def test_overwrite_replaces_the_run(project, capsys):
    spec, run = project
    old = torch.load(run / "checkpoint.pt", map_location="cpu", weights_only=True)
    assert _train(spec, run, "--data", "circles", "--overwrite", "--steps", "2") == 0
    new = torch.load(run / "checkpoint.pt", map_location="cpu", weights_only=True)
    assert (old["step"], new["step"]) == (4, 2) and new["config"]["data"] == "circles"
    assert len((run / "metrics.jsonl").read_text().splitlines()) == 1


def test_a_run_samples_the_same_after_its_sources_are_edited_and_deleted(project, capsys):
    spec, run = project
    first, second = spec.parent / "a.npy", spec.parent / "b.npy"
    assert main(["sample", str(run), "-n", "16", "--seed", "4", "--out", str(first)]) == 0
    base = spec.parent / "parts" / "base.gen"
    base.write_text(base.read_text().replace("0.1 + 19.9 * t", "0.5 + 5 * t"))
    spec.write_text(MAIN.replace("ddim(steps = 5)", "ddim(steps = 50)"))
    assert main(["sample", str(run), "-n", "16", "--seed", "4", "--out", str(second)]) == 0
    assert np.array_equal(np.load(first), np.load(second))
    shutil.rmtree(spec.parent / "parts")
    spec.unlink()
    second.unlink()
    assert main(["sample", str(run), "-n", "16", "--seed", "4", "--out", str(second)]) == 0
    assert np.array_equal(np.load(first), np.load(second))


def test_a_run_saved_before_sources_were_stored_still_samples(project, tmp_path):
    _, run = project
    state = torch.load(run / "checkpoint.pt", map_location="cpu", weights_only=True)
    assert main(["sample", str(run), "-n", "8", "--out", str(tmp_path / "a.npy")]) == 0
    del state["config"]["sources"]  # as written before the sources were stored
    torch.save(state, run / "checkpoint.pt")
    assert main(["sample", str(run), "-n", "8", "--out", str(tmp_path / "b.npy")]) == 0
    assert np.array_equal(np.load(tmp_path / "a.npy"), np.load(tmp_path / "b.npy"))


def test_imports_from_a_parent_folder_and_nested_imports_are_stored(tmp_path, capsys):
    shared, project = tmp_path / "shared", tmp_path / "project"
    shared.mkdir()
    project.mkdir()
    (shared / "base.gen").write_text(BASE)
    (shared / "middle.gen").write_text(
        'import "base.gen"\n\nmodel middle extends base_vp {\n  sample with ddim(steps = 4)\n}\n'
    )
    spec = project / "top.gen"
    spec.write_text('import "../shared/middle.gen"\n\nmodel top extends middle {\n}\n')
    run = project / "run"
    assert _train(spec, run, "--data", "moons", "--steps", "2") == 0
    state = torch.load(run / "checkpoint.pt", map_location="cpu", weights_only=True)
    assert sorted(state["config"]["sources"]["files"]) == [
        "../shared/base.gen",
        "../shared/middle.gen",
        "top.gen",
    ]
    first = tmp_path / "a.npy"
    assert main(["sample", str(run), "-n", "8", "--out", str(first)]) == 0
    shutil.rmtree(shared)
    again = tmp_path / "b.npy"
    assert main(["sample", str(run), "-n", "8", "--out", str(again)]) == 0
    assert np.array_equal(np.load(first), np.load(again))


def test_resume_compares_content_not_the_spec_file_name(project):
    spec, run = project
    renamed = spec.with_name("renamed.gen")
    spec.rename(renamed)
    assert _train(renamed, run, "--resume", "--steps", "6") == 0
    state = torch.load(run / "checkpoint.pt", map_location="cpu", weights_only=True)
    assert state["step"] == 6 and state["config"]["sources"]["main"] == "renamed.gen"


def test_a_run_saved_before_sources_were_stored_resumes_on_its_main_file(project):
    spec, run = project
    state = torch.load(run / "checkpoint.pt", map_location="cpu", weights_only=True)
    del state["config"]["sources"]
    torch.save(state, run / "checkpoint.pt")
    assert _train(spec, run, "--resume", "--steps", "6") == 0
    spec.write_text(MAIN.replace("ddim(steps = 5)", "ddim(steps = 6)"))
    assert _train(spec, run, "--resume", "--steps", "8") == 1
