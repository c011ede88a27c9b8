"""Trained runs taken by other models (a consistency teacher, reflow's previous flow) are opened
from the sources stored in the run's checkpoint; the declared capabilities match the hooks."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from gendsl import load
from gendsl.cli import main
from gendsl.errors import UsageError
from gendsl.lower.base import Model
from gendsl.protocol import Capabilities
from gendsl.resources import stdlib_dir
from gendsl.trained import open_trained

torch.set_num_threads(1)

NET = """import "stdlib/vp_sde.gen"
model small_teacher extends vp_sde {
  net eps = MLP(hidden = [HIDDEN], time = fourier)
}
"""

STUDENT = """import "teacher/main.gen"
model student extends teacher {
  net f = MLP(hidden = [8], time = fourier)
  predict x0 = consistency(f, sigma_data = 0.5)
  loss consistency(teacher = teacher, solver = heun, steps = 4, metric = l2)
  sample with onestep
}
"""


def _train(spec: Path, out: Path, capsys, *extra: str) -> None:
    argv = ["train", str(spec), "--data", "moons", "--steps", "2", "--batch-size", "8"]
    code = main([*argv, "--out", str(out), "--no-progress", *extra])
    assert code == 0, capsys.readouterr().err


def test_a_teacher_is_rebuilt_from_its_runs_stored_sources_after_its_files_change(
    tmp_path, capsys
):
    """The teacher run's model lives in an imported file that is edited after training (its
    network widened 8 -> 12): the teacher is still the trained 8-wide network, with the run's
    EMA weights."""
    (tmp_path / "teacher").mkdir()
    net = tmp_path / "teacher" / "net.gen"
    net.write_text(NET.replace("HIDDEN", "8"))
    main_spec = tmp_path / "teacher" / "main.gen"
    main_spec.write_text('import "net.gen"\nmodel teacher extends small_teacher {\n}\n')
    run = tmp_path / "runs" / "teacher"
    _train(main_spec, run, capsys)
    net.write_text(NET.replace("HIDDEN", "12"))
    student_spec = tmp_path / "student.gen"
    student_spec.write_text(STUDENT)

    student = load(str(student_spec), D=2)
    student.set_teacher(run)
    teacher = student._teacher
    weights = open_trained(run).weights()
    assert weights["nets.eps.body.0.weight"].shape[0] == 8  # the layout the assertions assume
    state = teacher.state_dict()
    assert set(state) == set(weights)
    for name, value in weights.items():
        assert torch.equal(state[name], value), name
    assert teacher.capabilities.likelihood and not teacher.training

    # and through the command line: distillation trains with the edited files on disk
    _train(student_spec, tmp_path / "runs" / "student", capsys, "--teacher", str(run))


def test_a_teacher_run_of_another_model_is_refused_by_name(tmp_path, capsys):
    run = tmp_path / "ddpm"
    _train(stdlib_dir() / "ve_sde.gen", run, capsys)
    student = load(str(stdlib_dir() / "consistency_distillation.gen"), D=2)
    with pytest.raises(UsageError) as info:
        student.set_teacher(run)
    assert str(info.value) == (
        f"the run {run} holds no model named 'vp_sde' (it was trained from "
        f"{(stdlib_dir() / 've_sde.gen').resolve()}, model 've_sde')"
    )


FLOW = """model flow {
  data x1 : real[D]
  latent x0 : real[D]
  x0 ~ Normal(0, 1)
  couple x0, x1 by COUPLING
  path x_t = (1 - t) * x0 + t * x1
  net v = MLP(hidden = [8], time = concat)
  predict velocity = v(x_t, t)
  loss flow_matching
  sample with ode(method = euler, steps = 4)
}
"""


def test_reflow_attaches_the_previous_run_its_spec_names_before_training(tmp_path, capsys):
    """``reflow(previous = "...")`` is a declared run: a missing one stops ``gendsl train``
    before the run folder is made; a present one is opened with its EMA weights."""
    first_spec = tmp_path / "first.gen"
    first_spec.write_text(FLOW.replace("COUPLING", "independent"))
    first = tmp_path / "first"
    _train(first_spec, first, capsys)
    spec = tmp_path / "reflow.gen"
    missing = tmp_path / "missing"
    spec.write_text(FLOW.replace("COUPLING", f'reflow(previous = "{missing}")'))
    out = tmp_path / "reflow"
    argv = ["train", str(spec), "--data", "moons", "--steps", "2", "--out", str(out)]
    assert main([*argv, "--no-progress"]) == 2
    assert capsys.readouterr().err == (
        "gendsl: error: model flow needs a trained flow-matching run (reflow's previous), the "
        f"run '{missing}' its spec names (previous), but there is no checkpoint at {missing}: "
        "train that run first, or correct the path (it is relative to the current folder)\n"
    )
    assert not out.exists()

    spec.write_text(FLOW.replace("COUPLING", f'reflow(previous = "{first}")'))
    _train(spec, out, capsys)
    model = load(str(spec), D=2)
    assert model.capabilities.takes("previous") and model.capabilities.runs[0].required
    model.attach_run("previous", first / "checkpoint.pt")
    previous = open_trained(first).weights()
    for name, value in model.previous().state_dict().items():
        assert torch.equal(value, previous[name]), name


STDLIB = sorted(p.stem for p in stdlib_dir().glob("*.gen"))


def _overrides(model: Model, name: str) -> bool:
    return getattr(type(model), name) is not getattr(Model, name)


@pytest.mark.parametrize("name", STDLIB)
def test_every_stdlib_models_capabilities_match_its_hooks(name):
    """A declared likelihood, ELBO or diagnostics is a hook the family defines; a custom step
    and parameter groups come together and only with the methods."""
    model = load(str(stdlib_dir() / f"{name}.gen"), D=2, K=3)
    can = model.capabilities
    assert isinstance(can, Capabilities)
    assert can.likelihood == _overrides(model, "log_prob")
    assert can.elbo == _overrides(model, "elbo")
    assert can.diagnostics == _overrides(model, "diagnostics")
    assert not can.step_report or _overrides(model, "step_report")
    assert can.step_report == (name == "ot_cfm")  # the stdlib's one ot(exact) coupling
    assert can.training_step == can.param_groups == hasattr(model, "training_step")
    assert can.takes("--teacher") == (name == "consistency_distillation")
    assert can.takes("--base") == (name == "controlnet")
    assert not can.takes("previous")  # reflow: see the test above
