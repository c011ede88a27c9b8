"""The sampler registry: every sampler of the diffusion, matching and flow families, declared
once.

Plain data, no torch: the checker (``sample with NAME(options)`` and the ranges of its numbers),
the docs tables (``docs/gen_tables.py``), the runtime's measured defaults
(``gendsl.sampling.DEFAULTS``) and the network-evaluation count of a model's default sampler
all read these declarations.  The runtime binds each name to its pure sampler function in
:mod:`gendsl.sampling.bound`; ``tests/sampling/test_registry.py`` runs every declared sampler
on every process it declares and counts its network calls against :func:`nfe`.

A :class:`SamplerDecl` gives a sampler's name, family, the processes it runs on (keys of
:data:`PROCESSES`), its options in positional order (each an :class:`Option`: value kind,
default, choices, range), its network calls per step, the steps and time schedule it takes
when neither the spec nor the caller gives them, a one-line description and its citation.
See ``docs/samplers.md`` for how to add one.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from gendsl.value_range import AT_LEAST_ONE, AT_LEAST_TWO, NON_NEGATIVE, ORDER, POSITIVE, Range

__all__ = [
    "PROCESSES",
    "SAMPLERS",
    "SCHEDULES",
    "SCHEDULE_CALLS",
    "SOLVER_CALLS",
    "Option",
    "SamplerDecl",
    "ScheduleCall",
    "declared",
    "nfe",
    "nfe_text",
    "of_family",
    "option_range",
    "steps_for_nfe",
]

#: Processes and paths a sampler may declare, with the words the docs use.
PROCESSES: Mapping[str, str] = MappingProxyType(
    {
        "vp": "VP SDE",
        "subvp": "sub-VP SDE",
        "ve": "VE SDE",
        "affine": "affine SDE",
        "chain": "discrete chain",
        "consistency": "consistency model",
        "path": "probability path",
        "base": "a flow's base distribution",
    }
)

_SDES_AND_CHAIN = ("vp", "subvp", "ve", "affine", "chain")


@dataclass(frozen=True)
class ScheduleCall:
    """A time schedule written as a call (``karras(rho = 7)``): its options, the first
    ``positional`` of which may be given without a name."""

    name: str
    doc: str
    options: Mapping[str, Option]
    positional: int = 1


@dataclass(frozen=True)
class Option:
    """One option of a sampler: the value kind of :mod:`gendsl.analysis.library` (``number``,
    ``int``, ``bool``, ``choice``), its default, its choices (and schedule calls), the range of
    its numbers (``None``: any value of the kind) and a description."""

    kind: str
    default: Any = None
    choices: tuple[str, ...] = ()
    bound: Range | None = None
    calls: tuple[ScheduleCall, ...] = ()
    doc: str = ""


def _options(**options: Option) -> Mapping[str, Option]:
    return MappingProxyType(dict(options))


#: The time schedules of the diffusion samplers (``gendsl.sampling.SCHEDULES`` binds them).
SCHEDULES = ("uniform_t", "uniform_log_snr", "log_snr_jump", "truncated_log_snr", "karras")

#: Schedules that take options, written as calls in a spec.
SCHEDULE_CALLS: Mapping[str, ScheduleCall] = MappingProxyType(
    {
        c.name: c
        for c in (
            ScheduleCall(
                "karras",
                "Karras et al. 2022 time steps",
                _options(rho=Option("number", 7, bound=POSITIVE)),
            ),
            ScheduleCall(
                "log_snr_jump",
                "one step to sigma_cap, then uniform in log-SNR",
                _options(sigma_cap=Option("number", 20, bound=POSITIVE)),
            ),
            ScheduleCall(
                "truncated_log_snr",
                "start at sigma_cap from the marginal there, then uniform in log-SNR",
                _options(sigma_cap=Option("number", 20, bound=POSITIVE)),
            ),
        )
    }
)

_SCHEDULE = Option(
    "choice",
    "auto",
    ("auto", *SCHEDULES),
    calls=tuple(SCHEDULE_CALLS.values()),
    doc="auto: the schedule measured best for the sampler (gendsl.sampling.DEFAULTS)",
)

#: Network calls per step of the ODE solvers (``None``: adaptive, as many as the tolerance
#: needs).  Euler and Heun are fixed steps; rk4 and midpoint are torchdiffeq's fixed-grid
#: Runge-Kutta methods (Chen et al. 2018).
SOLVER_CALLS: Mapping[str, int | None] = MappingProxyType(
    {"dopri5": None, "euler": 1, "heun": 2, "rk4": 4, "midpoint": 2}
)


def _solver(default: str) -> Option:
    return Option("choice", default, tuple(SOLVER_CALLS), doc="the ODE solver")


_FINAL = Option(
    "choice",
    "ab2",
    ("tweedie", "ab2", "extrapolate"),
    doc="the last step into data: Tweedie, or second order (Adams-Bashforth-2 in sigma, "
    "or D extrapolated in sigma^2)",
)

_CLIP = Option(
    "bool",
    None,
    doc="clip each step's denoised estimate to the data's range [0, 1] (Ho et al. 2020); "
    "default: on for image data, and only image data may set it",
)

Calls = Callable[[Mapping[str, Any]], int | None]


def _one(options: Mapping[str, Any]) -> int:
    return 1


@dataclass(frozen=True)
class SamplerDecl:
    """One sampler.

    ``calls(options)`` is its network calls per step given its resolved options (``None`` where
    the count is not fixed: adaptive solvers, torchsde's solvers); ``calls_text`` says it in
    words for the docs.  ``final`` is the calls of its last step when that step differs (the
    diffusion samplers end with one Tweedie step onto the data), so that ``steps`` steps cost
    ``calls * (steps - final) + final`` evaluations (:func:`nfe`).  ``fixed_steps`` is set when
    the sampler takes that many steps whatever ``steps`` says.  ``steps`` and ``schedule``
    default to ``default_steps`` / ``default_schedule`` when unset.  ``aliases`` maps option
    names a spec may also write to the option's name.
    """

    name: str
    family: str
    processes: tuple[str, ...]
    doc: str
    cite: str
    options: Mapping[str, Option]
    calls: Calls = _one
    calls_text: str = "1"
    final: int = 0
    default_steps: int | None = None
    default_schedule: str | None = None
    fixed_steps: int | None = None
    aliases: Mapping[str, str] = field(default_factory=dict)

    def defaults(self) -> dict[str, Any]:
        """Every option's default value."""
        return {k: o.default for k, o in self.options.items()}


def _diffusion(
    name: str,
    doc: str,
    cite: str,
    steps: tuple[int, str],
    *,
    calls: Calls = _one,
    calls_text: str = "1",
    aliases: Mapping[str, str] | None = None,
    **options: Option,
) -> SamplerDecl:
    """A sampler of the reverse diffusion: every one takes ``steps`` (>= 2: the last is the
    Tweedie step onto the data) and a time ``schedule``; unset, they are the measured
    ``steps`` pair (benchmarks/samplers.py with exact scores, benchmarks/diffusion_2d.py with
    trained networks)."""
    return SamplerDecl(
        name,
        "diffusion",
        _SDES_AND_CHAIN,
        doc,
        cite,
        _options(
            steps=Option("int", None, bound=AT_LEAST_TWO),
            schedule=_SCHEDULE,
            **options,
            clip=_CLIP,
        ),
        calls=calls,
        calls_text=calls_text,
        final=1,
        default_steps=steps[0],
        default_schedule=steps[1],
        aliases=MappingProxyType(dict(aliases or {})),
    )


def _consistency(name: str, doc: str, steps: int, fixed_steps: int | None) -> SamplerDecl:
    return SamplerDecl(
        name,
        "diffusion",
        ("consistency",),
        doc,
        "Song, Dhariwal, Chen & Sutskever 2023, Algorithm 1",
        _options(steps=Option("int", steps, bound=AT_LEAST_ONE), schedule=_SCHEDULE),
        default_steps=steps,
        fixed_steps=fixed_steps,
    )


def _solver_calls(options: Mapping[str, Any]) -> int | None:
    return SOLVER_CALLS[options["solver"]]


def _pc_calls(options: Mapping[str, Any]) -> int:
    return 1 + int(options["corrector_steps"])


def _dpm_calls(options: Mapping[str, Any]) -> int:
    return 1 if options["multistep"] else int(options["order"])


def _none(options: Mapping[str, Any]) -> None:
    return None


_SOLVER_TEXT = "euler 1, heun 2, midpoint 2, rk4 4, dopri5 adaptive"
_METHOD_ALIAS = MappingProxyType({"method": "solver"})

# Deterministic exponential-integrator samplers start at sigma = 20 (truncated_log_snr): on an
# exact score the single jump from sigma(T) of log_snr_jump is as accurate and wins at 10 NFE,
# but with a trained network it multiplies the network's error at sigma(T) by sigma(T)/sigma_cap
# ~ 7 for the VP SDE, a bias more steps never remove (`benchmarks/diffusion_2d.py --specs vp_sde
# --data moons --schedule log_snr_jump`: dpm_solver W2 0.43 at 100 steps vs 0.21 truncated).
_DECLS = (
    _diffusion(
        "ancestral",
        "the reverse chain / reverse-SDE ancestral steps",
        "Ho, Jain & Abbeel 2020, Algorithm 2",
        (200, "uniform_t"),
    ),
    _diffusion(
        "euler_maruyama",
        "Euler-Maruyama on the reverse SDE",
        "Song et al. 2021, eq. 6",
        (500, "uniform_t"),
    ),
    _diffusion(
        "sde",
        "torchsde on the reverse SDE",
        "Li et al. 2020 (torchsde); Song et al. 2021, eq. 6",
        (500, "uniform_t"),
        calls=_none,
        calls_text="not fixed (torchsde evaluates the drift as its method needs)",
        aliases=_METHOD_ALIAS,
        solver=Option("choice", "euler", ("euler", "milstein", "srk", "heun")),
    ),
    _diffusion(
        "ode",
        "probability-flow ODE with torchdiffeq",
        "Song et al. 2021, eq. 13; Karras et al. 2022, Algorithm 1 (euler, heun)",
        (50, "uniform_log_snr"),
        calls=_solver_calls,
        calls_text=_SOLVER_TEXT,
        aliases=_METHOD_ALIAS,
        solver=_solver("dopri5"),
        rtol=Option("number", 1e-5, bound=POSITIVE),
        atol=Option("number", 1e-5, bound=POSITIVE),
    ),
    _diffusion(
        "pc",
        "predictor-corrector",
        "Song et al. 2021, Algorithms 2-3",
        (200, "uniform_t"),
        calls=_pc_calls,
        calls_text="1 + corrector_steps",
        snr=Option("number", 0.16, bound=POSITIVE),
        corrector_steps=Option("int", 1, bound=NON_NEGATIVE),
    ),
    _diffusion(
        "ddim",
        "DDIM",
        "Song, Meng & Ermon 2021",
        (50, "truncated_log_snr"),
        eta=Option("number", 0, bound=NON_NEGATIVE),
    ),
    _diffusion(
        "dpm_solver",
        "DPM-Solver; predict = data: DPM-Solver++",
        "Lu et al. 2022; Lu et al. 2022b",
        (20, "truncated_log_snr"),
        calls=_dpm_calls,
        calls_text="1 (multistep), order (single-step)",
        order=Option("int", 2, bound=ORDER),
        multistep=Option("bool", True),
        predict=Option("choice", "data", ("noise", "data")),
        final=_FINAL,
    ),
    _diffusion(
        "unipc",
        "UniPC predictor-corrector",
        "Zhao et al. 2023",
        (20, "truncated_log_snr"),
        order=Option("int", 2, bound=ORDER),
        variant=Option("choice", "bh2", ("bh1", "bh2")),
        lower_order_final=Option("bool", False),
        final=_FINAL,
    ),
    _consistency("onestep", "one consistency step", 1, fixed_steps=1),
    _consistency("multistep", "multistep consistency sampling", 4, fixed_steps=None),
    SamplerDecl(
        "ode",
        "matching",
        ("path",),
        "integrate the learned velocity",
        "Lipman et al. 2023; Chen et al. 2018 (torchdiffeq)",
        _options(
            steps=Option("int", None, bound=AT_LEAST_ONE),
            solver=_solver("dopri5"),
            rtol=Option("number", 1e-5, bound=POSITIVE),
            atol=Option("number", 1e-5, bound=POSITIVE),
        ),
        calls=_solver_calls,
        calls_text=_SOLVER_TEXT,
        default_steps=100,
        aliases=_METHOD_ALIAS,
    ),
    SamplerDecl(
        "ancestral",
        "flow",
        ("base",),
        "x = T^-1(z) in one pass, z drawn from the base (and every learned prior) with its "
        "standard deviation multiplied by temperature",
        "Dinh et al. 2017; temperature: Kingma & Dhariwal 2018, Sec. 5",
        _options(
            temperature=Option(
                "number",
                1,
                bound=POSITIVE,
                doc="T: the base's standard deviation times T (1: the model; Glow's samples "
                "look best near 0.7)",
            )
        ),
        calls_text="one pass of the inverse flow",
        fixed_steps=1,
    ),
)

#: Every sampler, by (family, name).
SAMPLERS: Mapping[tuple[str, str], SamplerDecl] = MappingProxyType(
    {(d.family, d.name): d for d in _DECLS}
)


def of_family(family: str) -> Mapping[str, SamplerDecl]:
    """The samplers of ``family`` by name, in declaration order (the first is the default)."""
    return MappingProxyType({d.name: d for d in _DECLS if d.family == family})


def declared(family: str, name: str) -> SamplerDecl:
    """The declaration of sampler ``name`` of ``family``; ``KeyError`` if there is none."""
    return SAMPLERS[family, name]


def _resolved(decl: SamplerDecl, options: Mapping[str, Any]) -> dict[str, Any]:
    """``options`` over ``decl``'s defaults (an unset option, ``None``, takes its default)."""
    return {**decl.defaults(), **{k: v for k, v in options.items() if v is not None}}


def nfe(decl: SamplerDecl, steps: int | None, options: Mapping[str, Any]) -> int | None:
    """Network evaluations of ``steps`` steps of ``decl`` with ``options`` (unset ones take
    their defaults): ``calls * (steps - final) + final``; ``None`` where the count is not fixed
    or there are no steps to count."""
    resolved = _resolved(decl, options)
    if decl.fixed_steps is not None:
        steps = decl.fixed_steps
    elif steps is None:
        steps = decl.default_steps
    per_step = decl.calls(resolved)
    if per_step is None or steps is None:
        return None
    return per_step * (steps - decl.final) + decl.final


def nfe_text(decl: SamplerDecl, steps: int | None, options: Mapping[str, Any]) -> str:
    """:func:`nfe` in words: the count, ``adaptive`` for an adaptive ODE solver, else
    ``not fixed``."""
    count = nfe(decl, steps, options)
    if count is not None:
        return str(count)
    solver = _resolved(decl, options).get("solver")
    return "adaptive" if solver in SOLVER_CALLS and SOLVER_CALLS[solver] is None else "not fixed"


def steps_for_nfe(decl: SamplerDecl, budget: int, options: Mapping[str, Any]) -> int | None:
    """The most steps of ``decl`` with ``options`` that spend at most ``budget`` network
    evaluations (the inverse of :func:`nfe`); ``None`` where the count is not fixed."""
    if decl.fixed_steps is not None:
        return decl.fixed_steps
    per_step = decl.calls(_resolved(decl, options))
    if per_step is None:
        return None
    return (budget - decl.final) // per_step + decl.final


def option_range(family: str | None, option: str, param: str) -> tuple[bool, Range | None]:
    """(whether the registry declares it, its range) for ``param`` of sampler ``option`` of
    ``family`` or, with any family, of the schedule call ``option``."""
    decl = SAMPLERS.get((family, option)) if family is not None else None
    if decl is not None and param in decl.options:
        return True, decl.options[param].bound
    call = SCHEDULE_CALLS.get(option)
    if call is not None and param in call.options:
        return True, call.options[param].bound
    return False, None
