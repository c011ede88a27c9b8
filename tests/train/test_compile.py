"""``train { compile = true }``: every stdlib spec trains under torch.compile, one compiled
graph serves every batch size, and what cannot be compiled is refused with a clear message.

The tests use dynamo backends without code generation: ``eager`` (dynamo's tracing with symbolic
sizes, which is where specs failed) for the whole standard library, ``aot_eager`` (tracing plus
AOTAutograd's joint forward/backward graph) for the losses that stress autograd.  Inductor's C++
and Triton code generation is measured in ``benchmarks/gpu.py``, not tested here.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch._dynamo.utils import counters

from gendsl.errors import UsageError
from gendsl.lower import load
from gendsl.resources import stdlib_dir
from gendsl.train import fit, read_metrics
from gendsl.train.compiled import resolve_backend

torch.set_num_threads(1)

STDLIB = sorted(p.stem for p in stdlib_dir().glob("*.gen"))
#: the losses that differentiate twice, the two-optimiser step, the ODE-based likelihood, Pyro's
#: enumeration and a plain denoising loss
AUTOGRAD_CASES = ["wgan_gp", "ssm", "ffjord", "discrete_vae", "vp_sde"]


def _model_and_data(name: str, n: int = 64):
    torch.manual_seed(0)
    model = load(str(stdlib_dir() / f"{name}.gen"), D=2, K=3)
    if name == "consistency_distillation":
        model.set_teacher(load(str(stdlib_dir() / "vp_sde.gen"), D=2))
    var = model.sole_data_variable()
    shape = model.shape_of(var.name)
    kind = model.checked.variables[var.name].type.kind
    x = torch.rand(n, *shape) if kind == "image" else torch.randn(n, *shape)
    if kind == "binary":
        x = (x > 0).float()
    if model.checked.conditional:
        return model, (x, torch.randint(0, 3, (n,)))
    return model, x


def _fit_compiled(name: str, backend: str, tmp_path, steps: int = 2) -> list[dict]:
    model, data = _model_and_data(name)
    torch._dynamo.reset()
    counters.clear()
    fit(
        model,
        data,
        steps=steps,
        batch_size=8,
        lr=1e-3,
        compile=backend,
        log_every=1,
        out_dir=tmp_path,
        progress=False,
        device="cpu",
    )
    assert counters["stats"]["unique_graphs"] > 0, "nothing was compiled"
    return read_metrics(tmp_path / "metrics.jsonl")


@pytest.mark.slow
@pytest.mark.parametrize("name", STDLIB)
def test_every_stdlib_spec_trains_compiled(name, tmp_path):
    records = _fit_compiled(name, "eager", tmp_path)
    assert [r["step"] for r in records] == [1, 2]
    assert all(math.isfinite(r["loss"]) for r in records)


@pytest.mark.slow
@pytest.mark.parametrize("name", AUTOGRAD_CASES)
def test_compiled_autograd_of_twice_differentiated_and_two_player_losses(name, tmp_path):
    records = _fit_compiled(name, "aot_eager", tmp_path)
    assert all(math.isfinite(r["loss"]) for r in records)


def test_one_compiled_graph_serves_every_batch_size():
    model, data = _model_and_data("vp_sde", n=32)
    torch._dynamo.reset()
    loss = torch.compile(model.loss, backend="aot_eager", dynamic=True)
    torch.manual_seed(1)
    loss(data[:8]).backward()
    with torch.compiler.set_stance("fail_on_recompile"):
        for n in (5, 13, 32):
            value = loss(data[:n])
            value.backward()
            assert torch.isfinite(value)
    # the compiled loss is the loss: same value from the same random stream
    torch.manual_seed(2)
    compiled = loss(data[:16])
    torch.manual_seed(2)
    torch.testing.assert_close(compiled, model.loss(data[:16]), rtol=1e-6, atol=1e-6)


def test_compile_settings_are_checked(monkeypatch):
    cpu = torch.device("cpu")
    assert resolve_backend(False, cpu) is None
    assert resolve_backend("aot_eager", cpu) == "aot_eager"
    with pytest.raises(UsageError, match="compile must be true, false or one of inductor"):
        resolve_backend("tensorrt", cpu)
    monkeypatch.setattr("shutil.which", lambda name: None)
    with pytest.raises(UsageError, match=r"needs a C\+\+ compiler \(g\+\+ or clang\+\+\)"):
        resolve_backend(True, cpu)


def test_a_certified_ot_coupling_compiles_once():
    """``ot(exact, gap = 0.01)`` pairs on the host and records a new certified gap (a Python
    float) every batch; the pairing runs eagerly, so a compiled loss does not recompile per
    batch (a traced frame would specialise on each float)."""
    model = load(
        f'import "{stdlib_dir() / "ot_cfm.gen"}"\nmodel m extends ot_cfm {{\n'
        "  couple x0, x1 by ot(exact, gap = 0.01)\n}",
        D=2,
    )
    torch._dynamo.reset()
    loss = torch.compile(model.loss, backend="aot_eager")
    g = torch.Generator().manual_seed(1)  # the data; the noise comes from the global stream
    torch.manual_seed(0)
    loss(torch.randn(64, 2, generator=g)).backward()
    gaps = {model.coupling.last_relative_gap}
    with torch.compiler.set_stance("fail_on_recompile"):
        for _ in range(3):
            value = loss(torch.randn(64, 2, generator=g))
            value.backward()
            gaps.add(model.coupling.last_relative_gap)
    assert len(gaps) == 4 and all(0 < gap <= 0.01 for gap in gaps)  # four batches, four gaps
