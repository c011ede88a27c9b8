"""``gendsl derive``: the steps by default, ``--brief`` as before, ``--format notebook`` a
notebook that nbformat validates and that runs top to bottom, and a failing check exit 1."""

from __future__ import annotations

import subprocess
import sys

import pytest
from cli_support import STDLIB

from gendsl.analysis.check import check_file
from gendsl.cli import main
from gendsl.symbolic.derivation import derive_fresh
from gendsl.symbolic.derived import render
from gendsl.symbolic.steps import build
from gendsl.symbolic.steps.model import Topic


def test_brief_prints_the_summary_unchanged(capsys):
    assert main(["derive", "--brief", str(STDLIB / "vp_sde.gen")]) == 0
    model = check_file(STDLIB / "vp_sde.gen")[-1]
    assert capsys.readouterr().out == render(derive_fresh(model), "text").rstrip("\n") + "\n"


def test_derive_prints_the_checked_steps_by_default(capsys):
    assert main(["derive", str(STDLIB / "ddpm.gen")]) == 0
    out = capsys.readouterr().out
    assert "ddpm: steps" in out and "q(x_(k-1) | x_k, x_0) = N(mu_tilde_k, beta_tilde_k I)" in out
    assert out.count("check: sympy check passed") >= 3


def test_notebook_and_brief_is_a_usage_error(capsys):
    assert main(["derive", "--brief", "--format", "notebook", str(STDLIB / "ddpm.gen")]) == 2
    assert "--format notebook writes the steps and their checks; drop --brief" in (
        capsys.readouterr().err
    )


def test_a_failing_check_is_exit_1_naming_the_step(capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("GENDSL_CACHE", str(tmp_path))
    real = build._BUILDERS["diffusion"]

    def wrong(model):
        setup, topics = real(model)
        topic = Topic("injected")
        topic.step("a(0) = 2", "a(0) = 2", "wrong", check=("sympy", "assert a.subs(t, 0) == 2"))
        return setup, [*topics, topic]

    monkeypatch.setitem(build._BUILDERS, "diffusion", wrong)
    assert main(["derive", str(STDLIB / "vp_sde.gen")]) == 1
    err = capsys.readouterr().err
    assert "vp_sde: the step 'a(0) = 2' (injected) fails its sympy check" in err


def test_the_notebook_validates_and_runs_top_to_bottom(capsys):
    nbformat = pytest.importorskip("nbformat")
    assert main(["derive", "--format", "notebook", str(STDLIB / "ddpm.gen")]) == 0
    nb = nbformat.reads(capsys.readouterr().out, as_version=4)
    nbformat.validate(nb)
    code = [c.source for c in nb.cells if c.cell_type == "code"]
    assert len(code) == 1 + 8  # the setup and one cell per checked step
    namespace: dict[str, object] = {}
    for source in code:  # what a kernel does with the cells: in order, in one namespace
        exec(source, namespace)
    assert capsys.readouterr().out.count("check passed") == 8


@pytest.mark.parametrize("name", ["vp_sde", "wgan_gp", "iwae", "glow", "sb_cfm", "ssm"])
def test_notebook_code_cells_run_in_one_namespace(name: str, capsys):
    """What a kernel does with the notebook, in-process: every code cell, in order, in one
    namespace."""
    nbformat = pytest.importorskip("nbformat")
    assert main(["derive", "--format", "notebook", str(STDLIB / f"{name}.gen")]) == 0
    nb = nbformat.reads(capsys.readouterr().out, as_version=4)
    nbformat.validate(nb)
    namespace: dict[str, object] = {}
    code = [c.source for c in nb.cells if c.cell_type == "code"]
    for source in code:
        exec(source, namespace)
    assert capsys.readouterr().out.count("check passed") == len(code) - 1


def test_a_warm_stepwise_derive_imports_no_sympy(cli_env, tmp_path):
    env = dict(cli_env, GENDSL_CACHE=str(tmp_path))
    script = (
        "import sys\nfrom gendsl.cli import main\ncode = main(['derive', sys.argv[1]])\n"
        "print('SYMPY', 'sympy' in sys.modules, file=sys.stderr)\nsys.exit(code)\n"
    )
    runs = [
        subprocess.run(
            [sys.executable, "-c", script, str(STDLIB / "ddpm.gen")],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
        )
        for _ in range(2)
    ]
    assert [r.returncode for r in runs] == [0, 0]
    assert "SYMPY True" in runs[0].stderr and "SYMPY False" in runs[1].stderr
    assert runs[0].stdout == runs[1].stdout and "check: sympy check passed" in runs[1].stdout
