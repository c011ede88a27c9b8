"""``gendsl check``, ``fmt``, ``graph`` and ``derive``: the commands that never import torch."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys

import pytest
import sympy as sp
from cli_support import STDLIB

from gendsl.cli import main

SPECS = sorted(STDLIB.glob("*.gen"))

# run `gendsl check` on every stdlib spec, then report the modules it imported
# (its speed is measured by benchmarks/check_speed.py, not asserted here)
CHECK_AND_REPORT = """\
import sys
from gendsl.cli import main
code = main(["check", *sys.argv[1:]])
print("MODULES", " ".join(sorted(sys.modules)), file=sys.stderr)
sys.exit(code)
"""


@pytest.fixture(scope="module")
def checked_stdlib(cli_env) -> tuple[subprocess.CompletedProcess, set[str]]:
    result = subprocess.run(
        [sys.executable, "-c", CHECK_AND_REPORT, *map(str, SPECS)],
        capture_output=True,
        text=True,
        env=cli_env,
        timeout=60,
    )
    modules = set(re.search(r"MODULES (.*)", result.stderr).group(1).split())
    return result, modules


def test_check_accepts_every_stdlib_spec_without_torch(checked_stdlib):
    result, modules = checked_stdlib
    assert result.returncode == 0, result.stderr
    assert len(SPECS) > 20
    for spec in SPECS:
        assert re.search(rf"{re.escape(str(spec))}: ok \({spec.stem} \[\w+\]\)", result.stdout)
    assert not {m for m in modules if m == "torch" or m.startswith("torch.")}


def test_fmt_check_accepts_the_stdlib_and_fmt_fixes_a_messy_spec(tmp_path, capsys):
    assert main(["fmt", "--check", *map(str, SPECS)]) == 0
    assert "would reformat" not in capsys.readouterr().err

    clean = (STDLIB / "vae.gen").read_text()
    messy = tmp_path / "vae.gen"
    messy.write_text(re.sub(r" = ", "=", clean).replace("  ", "      "))
    before = messy.read_text()
    assert main(["fmt", "--check", str(messy)]) == 1
    assert f"would reformat {messy}" in capsys.readouterr().err
    assert messy.read_text() == before  # --check never writes
    assert main(["fmt", "--stdout", str(messy)]) == 0
    printed = capsys.readouterr().out
    assert main(["fmt", str(messy)]) == 0
    assert messy.read_text() == printed == clean  # canonical form, comments kept
    assert main(["fmt", "--check", str(messy)]) == 0


def test_graph_writes_dot_with_the_model_edges_and_a_png(tmp_path, capsys):
    dot, png = tmp_path / "vae.dot", tmp_path / "vae.png"
    assert main(["graph", str(STDLIB / "vae.gen"), "-o", str(dot)]) == 0
    text = dot.read_text()
    assert text.startswith('digraph "vae"')
    assert '"z" -> "x";' in text and '"dec" -> "x";' in text  # generative model p(x | z)
    assert re.search(r'"x" -> "z" \[style=dashed', text)  # guide q(z | x)
    assert re.search(r'"enc" -> "z" \[style=dashed', text)
    assert main(["graph", str(STDLIB / "vae.gen"), "-o", str(png)]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert f"wrote {png}" in capsys.readouterr().out


def _formula(text: str, label: str) -> sp.Expr:
    """The last right-hand side of the line ``label = ... = formula`` (a citation cut off)."""
    line = re.search(rf"^{re.escape(label)} = (.*?)(?:\s{{2,}}\(.*)?$", text, re.MULTILINE)
    assert line, text
    rhs = line.group(1).rpartition(" = ")[2]
    return sp.sympify(rhs.replace("^", "**"), locals={"t": sp.Symbol("t")})


def test_derive_prints_the_vp_sde_kernel(capsys):
    assert main(["derive", str(STDLIB / "vp_sde.gen")]) == 0
    text = capsys.readouterr().out
    assert "x_t | x_0 ~ N(a(t) x_0, s(t)^2 I)" in text
    assert re.search(r"recognised: VP SDE .*beta_min = 0\.1, beta_max = 20", text)
    # Song et al. 2021, eq. 29: a(t) = exp(-t^2 (b1 - b0) / 4 - t b0 / 2), s(t)^2 = 1 - a(t)^2
    t = sp.Symbol("t")
    a_expected = sp.exp(-(t**2) * (20 - sp.Rational(1, 10)) / 4 - t * sp.Rational(1, 20))
    a_printed = _formula(text, "mean scale: a(t)")
    s2_printed = _formula(text, "variance: s(t)^2")
    for value in (0.0, 0.1, 0.5, 1.0):
        assert float(a_printed.subs(t, value)) == pytest.approx(float(a_expected.subs(t, value)))
        expected_s2 = 1 - float(a_expected.subs(t, value)) ** 2
        assert float(s2_printed.subs(t, value)) == pytest.approx(expected_s2, abs=1e-12)


def test_derive_latex_and_markdown_formats(capsys):
    assert main(["derive", "--format", "latex", str(STDLIB / "vp_sde.gen")]) == 0
    latex = capsys.readouterr().out
    assert main(["derive", "--format", "markdown", str(STDLIB / "vp_sde.gen")]) == 0
    markdown = capsys.readouterr().out
    assert "\\" in latex and latex != markdown and "vp_sde" in markdown


def test_installed_console_script_matches_the_module(tmp_path):
    script = shutil.which("gendsl")
    if script is None:
        pytest.skip("the gendsl console script is not installed")
    result = subprocess.run(
        [script, "check", "-q", str(STDLIB / "vae.gen")], capture_output=True, text=True
    )
    assert (result.returncode, result.stdout) == (0, "")
