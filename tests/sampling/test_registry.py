"""The sampler registry agrees with the runtime: every declared sampler is bound and runs on
every process it declares, a counting network sees exactly the NFE the registry computes, the
checker refuses what the registry refuses, and the docs table is the registry's."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import pytest
import torch
from torch import Tensor

from gendsl import sampler_registry as registry
from gendsl.analysis import check_text, library
from gendsl.errors import SpecErrors, UsageError
from gendsl.lower import load
from gendsl.processes import Process
from gendsl.processes.affine import AffineSDE
from gendsl.processes.chain import DiscreteChain
from gendsl.processes.sdes import VESDE, VPSDE, SubVPSDE
from gendsl.resources import stdlib_dir
from gendsl.sampling import DEFAULTS, SCHEDULE_KNOBS, SCHEDULES, sample
from gendsl.sampling.bound import CONSISTENCY, DIFFUSION, MATCHING, bound
from gendsl.sampling.velocity import integrate

DOCS = Path(__file__).resolve().parents[2] / "docs"


def _process(kind: str) -> Process:
    """A small process of each kind a diffusion sampler may declare."""
    if kind == "vp":
        return VPSDE()
    if kind == "subvp":
        return SubVPSDE()
    if kind == "ve":
        return VESDE()
    if kind == "chain":
        return DiscreteChain(torch.linspace(1e-4, 0.02, 50, dtype=torch.float64))
    if kind == "affine":  # a VP SDE with constant beta = 4, its kernel integrated numerically
        return AffineSDE(lambda t: -2.0 + 0 * t, lambda t: 2.0 + 0 * t, t_min=1e-3)
    raise AssertionError(kind)


class CountingScore:
    """The exact score of N(0, I) data under ``process``, -x / (a² + s²), counting its calls."""

    def __init__(self, process: Process):
        self.process, self.calls = process, 0

    def __call__(self, x: Tensor, t: Tensor) -> Tensor:
        self.calls += 1
        a, s = self.process.marginal(t)
        return -x / (a**2 + s**2).reshape(-1, *([1] * (x.ndim - 1)))


def _variants(decl: registry.SamplerDecl) -> list[dict]:
    """Option settings that change the calls per step: each choice of a counted choice option,
    and non-default counts."""
    variants: list[dict] = [{}]
    if "solver" in decl.options:
        variants = [{"solver": s} for s in decl.options["solver"].choices]
    if decl.name == "pc":
        variants += [{"corrector_steps": 0}, {"corrector_steps": 2}]
    if decl.name == "dpm_solver":
        variants += [{"multistep": False, "order": k} for k in (1, 2, 3)] + [{"order": 3}]
    return variants


_DIFFUSION_CASES = [
    pytest.param(decl.name, kind, opts, id=f"{decl.name}-{kind}-{opts}")
    for decl in registry.of_family("diffusion").values()
    if decl.name in DIFFUSION
    for kind in decl.processes
    for opts in _variants(decl)
]


def test_every_declared_sampler_is_bound_and_every_bound_one_declared():
    assert {*DIFFUSION, *CONSISTENCY} == set(registry.of_family("diffusion"))
    assert set(MATCHING) == set(registry.of_family("matching"))
    for (family, name), decl in registry.SAMPLERS.items():
        assert callable(bound(family, name))
        assert set(decl.processes) <= set(registry.PROCESSES)
        assert decl.cite and decl.doc
    # every declared schedule is bound, and its options are the schedule's knobs
    assert set(registry.SCHEDULES) == set(SCHEDULES)
    assert set(registry.SCHEDULE_CALLS) <= set(SCHEDULES)
    knobs = {k for call in registry.SCHEDULE_CALLS.values() for k in call.options}
    assert knobs == set(SCHEDULE_KNOBS)
    # the runtime's measured defaults are the registry's
    for name in DIFFUSION:
        decl = registry.declared("diffusion", name)
        assert DEFAULTS[name] == (decl.default_steps, decl.default_schedule)


@pytest.mark.parametrize(("name", "kind", "opts"), _DIFFUSION_CASES)
def test_diffusion_sampler_runs_on_its_processes_with_the_declared_nfe(name, kind, opts):
    process = _process(kind)
    score = CountingScore(process)
    steps = 5
    knobs = {"rtol": 1e-3, "atol": 1e-3} if opts.get("solver") == "dopri5" else {}
    gen = torch.Generator().manual_seed(0)
    result = sample(
        process,
        score,
        (3, 2),
        method=name,
        steps=steps,
        generator=gen,
        dtype=torch.float64,
        **opts,
        **knobs,
    )
    assert result.x.shape == (3, 2) and torch.isfinite(result.x).all()
    assert result.nfe == score.calls
    declared = registry.nfe(registry.declared("diffusion", name), steps, opts)
    if declared is not None:
        assert score.calls == declared


def test_nfe_formula_by_hand():
    """calls * (steps - final) + final, checked on a few cases worked out by hand."""
    d = registry.of_family("diffusion")
    assert registry.nfe(d["pc"], 5, {"corrector_steps": 2}) == 3 * 4 + 1
    assert registry.nfe(d["ode"], 6, {"solver": "heun"}) == 2 * 5 + 1
    assert registry.nfe(d["ode"], 6, {}) is None  # dopri5: adaptive
    assert registry.nfe(d["dpm_solver"], None, {}) == 20  # measured default steps, multistep
    assert registry.nfe(d["onestep"], 9, {}) == 1
    assert registry.nfe(d["multistep"], None, {}) == 4
    assert registry.nfe(registry.declared("matching", "ode"), None, {"solver": "rk4"}) == 400
    assert registry.nfe_text(d["ode"], 6, {}) == "adaptive"
    assert registry.nfe_text(d["sde"], 6, {"solver": "euler"}) == "not fixed"
    assert registry.nfe_text(d["pc"], 500, {}) == "999"


@pytest.mark.parametrize(
    ("name", "opts"),
    [(d.name, opts) for d in registry.of_family("diffusion").values() for opts in _variants(d)],
)
def test_steps_for_nfe_is_the_most_steps_within_the_budget(name, opts):
    decl = registry.declared("diffusion", name)
    for budget in (9, 10, 20, 21):
        steps = registry.steps_for_nfe(decl, budget, opts)
        if steps is None:
            assert registry.nfe(decl, 5, opts) is None
            continue
        if decl.fixed_steps is not None:  # onestep: one step whatever the budget
            assert steps == decl.fixed_steps == registry.nfe(decl, budget, opts)
            continue
        assert registry.nfe(decl, steps, opts) <= budget < registry.nfe(decl, steps + 1, opts)


@pytest.mark.parametrize("solver", registry.SOLVER_CALLS)
def test_matching_ode_runs_with_the_declared_nfe(solver):
    calls = 0

    def velocity(x: Tensor, t: Tensor) -> Tensor:  # the flow of N(0, 1) onto N(3, 2²)
        nonlocal calls
        calls += 1
        return 3.0 + x / (1.0 + t).unsqueeze(-1)

    x0 = torch.randn(4, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    x1 = integrate(velocity, x0, solver=solver, steps=8)
    # dx/dt = 3 + x/(1+t): x(1) = 2 x0 + 6 ln 2
    tol = 1e-4 if solver in ("dopri5", "rk4") else 0.2
    torch.testing.assert_close(x1, 2 * x0 + 6 * math.log(2.0), atol=tol, rtol=0)
    declared = registry.nfe(registry.declared("matching", "ode"), 8, {"solver": solver})
    assert declared is None if solver == "dopri5" else calls == declared


@pytest.mark.parametrize("name", ["onestep", "multistep"])
def test_consistency_samplers_run_with_the_declared_nfe(name, monkeypatch):
    torch.manual_seed(0)
    model = load(str(stdlib_dir() / "consistency_training.gen"), D=2)
    calls = 0
    f_theta = model.f_theta

    def counted(x: Tensor, sigma: Tensor) -> Tensor:
        nonlocal calls
        calls += 1
        return f_theta(x, sigma)

    monkeypatch.setattr(model, "f_theta", counted)
    x = model.sample(3, method=name, steps=3, generator=torch.Generator().manual_seed(0))
    assert x.shape == (3, 2) and torch.isfinite(x).all()
    assert calls == model.last_nfe == registry.nfe(registry.declared("diffusion", name), 3, {})


def test_the_spec_alias_method_reaches_the_sampler_as_solver(tmp_path):
    """``ode(method = heun, steps = 6)`` samples with Heun: 2 calls a step and 1 at the end."""
    text = (stdlib_dir() / "vp_sde.gen").read_text()
    text = text.replace("dpm_solver(order = 2, steps = 20)", "ode(method = heun, steps = 6)")
    path = tmp_path / "vp_heun.gen"
    path.write_text(text)
    model = load(str(path), D=2)
    assert model.checked.sampler.kwargs["solver"] == "heun"
    assert model.default_nfe() == 2 * 5 + 1
    model.sample(3, generator=torch.Generator().manual_seed(0))
    assert model.last_nfe == 2 * 5 + 1


def test_a_model_refuses_a_sampler_not_declared_for_its_process():
    model = load(str(stdlib_dir() / "vp_sde.gen"), D=2)
    here = "ancestral, euler_maruyama, sde, ode, pc, ddim, dpm_solver, unipc"
    with pytest.raises(UsageError) as info:
        model.sample(2, method="onestep")
    assert str(info.value) == (
        f"sampler 'onestep' runs on: consistency model; the samplers of this model (VP SDE) "
        f"are {here}"
    )
    with pytest.raises(UsageError, match=f"unknown sampler 'leapfrog'; .* are {here}$"):
        model.sample(2, method="leapfrog")


_SPEC = """model m {
  data x : real[2]
  let beta(t) = 0.1 + 19.9 * t
  sde dx = -0.5 * beta(t) * x * dt + sqrt(beta(t)) * dw, t in [0, 1]
  net eps = MLP(hidden = [16], time = concat)
  predict eps = eps(x_t, t)
  loss dsm
  sample with SAMPLER
}"""


@pytest.mark.parametrize(
    ("sampler", "message", "col"),
    [
        (
            "unipc(orders = 2)",
            "unknown option 'orders' of sampler unipc; did you mean 'order'? (expected one of "
            "steps, schedule, order, variant, lower_order_final, final, clip)",
            21,
        ),
        ("ddim(eta = -0.5)", "sampler ddim: eta must be >= 0; found -0.5", 26),
        ("ode(rtol = 0)", "sampler ode: rtol must be > 0; found 0", 26),
        ("ode(method = euler, steps = 1)", "sampler ode: steps must be >= 2; found 1", 43),
        (
            "sde(method = rk4)",
            "sampler sde: method expects one of euler, milstein, srk, heun; found rk4; did you "
            "mean 'srk'?",
            28,
        ),
    ],
)
def test_the_checker_refuses_what_the_registry_refuses(sampler, message, col):
    with pytest.raises(SpecErrors) as info:
        check_text(_SPEC.replace("SAMPLER", sampler), "m.gen")
    (error,) = info.value.errors
    assert error.message == message
    assert (error.span.line, error.span.column) == (8, col)


def test_the_library_tables_are_the_registry():
    for family in ("diffusion", "matching"):
        table = library.FAMILY_INFO[family].samplers
        assert list(table) == list(registry.of_family(family))
        for name, spec in table.items():
            decl = registry.declared(family, name)
            assert spec.defaults() == decl.defaults()
            assert dict(spec.aliases) == dict(decl.aliases)


def test_the_docs_table_is_the_registry():
    spec = importlib.util.spec_from_file_location("gen_tables", DOCS / "gen_tables.py")
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    text = (DOCS / "samplers.md").read_text()
    assert gen.splice(text, gen.render_samplers()) == text, "run: python docs/gen_tables.py"
