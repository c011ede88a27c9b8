"""The matching family's back end: ``path`` specs compiled to flow-matching models.

A spec declares a source ``x0 ~ ...``, data ``x1``, a path ``x_t = α(t) x0 + β(t) x1 + γ(t) w``
(the symbolic core derives u_t = α' x0 + β' x1 + γ' w), a coupling ``couple x0, x1 by ...`` and
``predict velocity = v(x_t, t)``.  Training minimises the conditional flow-matching loss of
:mod:`gendsl.objectives.flow_matching` on pairs from :mod:`gendsl.objectives.couplings`;
sampling integrates dx/dt = v(x, t) from a source draw at t = 0 to t = 1 with torchdiffeq
(Chen et al. 2018); the likelihood follows the instantaneous change of variables
d log p_t(x(t)) / dt = −∇·v(x(t), t) (Chen et al. 2018, Thm. 1) backwards from the data to the
source, with the exact divergence in few dimensions and Hutchinson's estimate above
(Grathwohl et al. 2019; :func:`gendsl.objectives.divergence.default_trace`).

``couple x0, x1 by reflow(previous = "runs/...")`` compiles to :class:`ReflowModel`, which trains
on pairs (x0, Φ(x0)) of a previous run's flow Φ (Liu, Gong & Liu 2023, Alg. 1).
"""

from __future__ import annotations

import ast
import dataclasses
import math
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from gendsl import ir, sampler_registry
from gendsl.errors import InternalError, UsageError
from gendsl.ir import CheckedModel, Opt, Site
from gendsl.lower.base import Model
from gendsl.lower.interpret import Program
from gendsl.objectives.couplings import (
    Coupling,
    EntropicOT,
    ExactOT,
    Independent,
    SchrodingerBridge,
)
from gendsl.objectives.densities import draw
from gendsl.objectives.divergence import default_trace, ode_log_prob
from gendsl.objectives.flow_matching import (
    AffinePath,
    Coefficient,
    VelocityFn,
    flow_matching_loss,
    sample_time,
    straightness,
)
from gendsl.protocol import Batch, Capabilities, PretrainedRun
from gendsl.sampling.velocity import (
    DEFAULT_STEPS,
    SOLVERS,
    check_solver,
    integrate,
    solver_grid,
)

__all__ = [
    "DEFAULT_STEPS",
    "SOLVERS",
    "MatchingModel",
    "ReflowModel",
    "build",
    "build_coupling",
    "flow_log_prob",
    "path_coefficients",
]


Conditions = dict[str, Tensor]


# ------------------------------------------------------------------------------ the ODE


def flow_log_prob(
    v_fn: VelocityFn,
    x1: Tensor,
    log_p0: Callable[[Tensor], Tensor],
    *,
    trace: str = "exact",
    solver: str = "dopri5",
    steps: int | None = None,
    rtol: float = 1e-5,
    atol: float = 1e-5,
    generator: torch.Generator | None = None,
) -> Tensor:
    """log p_1(x1) = log p_0(x(0)) − ∫_0^1 ∇·v(x(t), t) dt along the flow through x(1) = x1,
    integrated backwards from t = 1 to 0 (:func:`gendsl.objectives.divergence.ode_log_prob`).
    ``trace`` is ``exact`` (D backward passes) or ``hutchinson`` (one Rademacher probe per
    sample, fixed over the solve)."""
    check_solver(solver)
    ts = solver_grid(1.0, 0.0, solver, steps, x1)
    return ode_log_prob(
        v_fn,
        x1,
        ts,
        log_p0,
        trace=trace,
        method=SOLVERS[solver],
        rtol=rtol,
        atol=atol,
        generator=generator,
    )


def _in_dtype(v_fn: VelocityFn, dtype: torch.dtype) -> VelocityFn:
    """``v_fn`` run in ``dtype`` (the network's) on a state of any floating dtype."""

    def wrapped(x: Tensor, t: Tensor) -> Tensor:
        return v_fn(x.to(dtype), t.to(dtype)).to(x.dtype)

    return wrapped


def _coefficient(text: str | None, fallback: Callable[[Tensor], Tensor]) -> Coefficient:
    """A path coefficient from its stored closed form: a number when the text does not
    mention t (read once, in double precision), the text's torch function of t without the
    broadcast of :func:`~gendsl.symbolic.torch_fns` otherwise (it is elementwise in t), and
    ``fallback`` when the text is not a stored closed form."""
    from gendsl.symbolic.safe_expr import Unreadable, compile_expr
    from gendsl.symbolic.torch_adapter import TORCH_FUNCTIONS

    try:
        tree = ast.parse(text or "", mode="eval")
        if not any(isinstance(n, ast.Name) and n.id == "t" for n in ast.walk(tree)):
            return float(compile_expr(text, _MATH_FUNCTIONS)(0.0))
        return compile_expr(text, TORCH_FUNCTIONS, lift=_lift)
    except (SyntaxError, Unreadable, ValueError, OverflowError, ZeroDivisionError):
        return fallback


def _lift(value: Any, t: Tensor) -> Tensor:
    """A constant argument of a function of t as a tensor like ``t``."""
    if isinstance(value, Tensor):
        return value
    return torch.as_tensor(value, dtype=t.dtype, device=t.device)


#: The functions of a stored closed form in double precision (for the constant coefficients).
_MATH_FUNCTIONS: dict[str, Callable[[float], float]] = {
    **{name: getattr(math, name) for name in ("sqrt", "exp", "log", "sin", "cos", "tan")},
    **{name: getattr(math, name) for name in ("tanh", "sinh", "cosh", "atan", "asin")},
    **{name: getattr(math, name) for name in ("acos", "asinh", "acosh", "atanh", "erf")},
    "erfc": math.erfc,
    "Abs": abs,
}


def path_coefficients(kernel: Any) -> dict[str, Coefficient]:
    """α, β, γ and their derivatives of a path kernel as :class:`AffinePath` takes them,
    decided once at compile time: constants as numbers (a path with γ = γ' = 0 then draws no
    noise), the rest as torch functions of t."""
    from gendsl.symbolic import torch_fns

    fns = torch_fns(kernel)
    exprs = getattr(kernel, "exprs", {})
    return {name: _coefficient(exprs.get(name), fn) for name, fn in fns.items()}


# ------------------------------------------------------------------------------ couplings


def coupling_option(checked: CheckedModel) -> Opt:
    """The ``couple`` option with every default filled in (``independent`` when absent)."""
    if checked.couple is None:
        return Opt("independent")
    if checked.couple.checked is None:
        raise InternalError("the checker passed an unchecked coupling; please report")
    return checked.couple.checked


def build_coupling(opt: Opt) -> Coupling:
    """The coupling object of ``opt`` (reflow is handled by :class:`ReflowModel`)."""
    kw = opt.kwargs
    if opt.name == "independent" or opt.name == "reflow":
        return Independent()
    if opt.name == "ot":
        if kw.get("method", "exact") == "exact":
            return ExactOT(gap=kw.get("gap") or 0.0)
        return EntropicOT(kw["reg"])
    if opt.name == "schrodinger":
        return SchrodingerBridge(kw["sigma"])
    raise InternalError(f"coupling {opt.name} has no implementation; please report")


# ------------------------------------------------------------------------------ the model


class MatchingModel(Model):
    """A compiled flow-matching model.

    Hooks: :meth:`velocity` (the network's v(x_t, t)), :meth:`couple` (training pairs),
    :meth:`per_sample_loss`.
    """

    family = "matching"
    capabilities = Capabilities(likelihood=True, steps=True, diagnostics=True)

    def __init__(self, checked: CheckedModel, bindings: Mapping[str, int]):
        super().__init__(checked, bindings)
        from gendsl.symbolic import path_forms

        if checked.path is None or checked.predict is None:
            raise UsageError(f"model {checked.name} needs a path and 'predict velocity = ...'")
        self.kernel = path_forms(checked.path, checked.lets)
        self.noiseless = self.kernel.noiseless
        self.path = AffinePath(**path_coefficients(self.kernel))
        self.source_name, self.data_name = self.kernel.x0, self.kernel.x1
        self.noised_name = self.kernel.target
        self.source_site = self.check_ends(checked)
        self.data_shape = self.shape_of(self.data_name)
        self.source_shape = self.shape_of(self.source_name)
        self.condition_names = [v.name for v in checked.condition_vars()]
        self.coupling_opt = coupling_option(checked)
        self.coupling = build_coupling(self.coupling_opt)
        if isinstance(self.coupling, ExactOT):
            self.capabilities = dataclasses.replace(self.capabilities, step_report=True)
        self.program = Program(self)
        self.normal_source = self._normal_source()
        self.predict_call = checked.predict.value
        if not isinstance(self.predict_call, ir.Call) or self.predict_call.func not in (
            checked.nets
        ):
            raise UsageError("predict velocity must call a network, e.g. v(x_t, t)")
        self.nets = nn.ModuleDict(
            {self.predict_call.func: self.build_net(checked.nets[self.predict_call.func])}
        )
        self.velocity_args = self._velocity_plan(checked)
        self.last_nfe: int | None = None

    # -------------------------------------------------------------- source and velocity

    def check_ends(self, checked: CheckedModel) -> Site | None:
        """The source's site, after checking that the data is the path's end x1 and the source
        x0 is drawn from a fixed distribution (hook: a data -> data transport's ends)."""
        data = [v.name for v in checked.data_vars()]
        if data != [self.data_name]:
            raise UsageError(
                f"a matching model's data must be the path's end {self.data_name}; found "
                f"data {', '.join(data) or 'none'}"
            )
        site = next((s for s in checked.sites if s.name == self.source_name), None)
        if site is None or site.given or site.packed:
            raise UsageError(
                f"the source {self.source_name} must be drawn from a fixed distribution, "
                f"e.g. {self.source_name} ~ Normal(0, 1)"
            )
        return site

    def source(self, n: int) -> torch.distributions.Distribution:
        """The source distribution p0 of ``x0 ~ ...`` for ``n`` draws (the source site of the
        spec's program, :mod:`gendsl.lower.interpret`)."""
        return self.program.density(self.source_name, (n,)).to_dist()

    def _normal_source(self) -> tuple[float, float] | None:
        """(μ, σ) when the source is ``Normal(μ, σ)`` with constant scalar parameters, else
        None (the lets are constants, so this is evaluated once)."""
        site = self.source_site
        if site is None:
            return None
        params = self.program.params(self.source_name)
        values = [params.get(k) for k in ("loc", "scale")]
        scalar = all(
            isinstance(v, (int, float)) or (isinstance(v, Tensor) and v.numel() == 1)
            for v in values
        )
        if site.dist != "Normal" or len(params) != 2 or not scalar:
            return None
        return float(values[0]), float(values[1])

    def draw_source(self, n: int, *, generator: torch.Generator | None = None) -> Tensor:
        """``n`` draws x0 ~ p0.  In training (no ``generator``) a constant scalar Normal source
        is μ + σ ε with ε from :func:`torch.randn`, without building the distribution."""
        normal = self.normal_source if generator is None else None
        if normal is None:
            return draw(self.source(n), generator=generator)
        like = self.like
        shape = (n, *self.source_shape)
        eps = torch.randn(shape, device=like.device, dtype=like.dtype)
        loc, scale = normal
        return eps if (loc, scale) == (0.0, 1.0) else loc + scale * eps

    def source_batch(self, data: Mapping[str, Tensor], n: int) -> Tensor:
        """The x0 of a training batch of ``n`` data points: ``n`` source draws (hook)."""
        return self.draw_source(n)

    def _velocity_plan(self, checked: CheckedModel) -> list[tuple[str, str | None]]:
        """What each argument of ``predict velocity = v(...)`` is, decided once: ``("t",
        None)`` the time, ``("label", y)`` a label condition, ``("input", c)`` another
        condition, ``("state", None)`` the state x_t."""
        plan: list[tuple[str, str | None]] = []
        for arg in self.predict_call.args:
            name = arg.id if isinstance(arg, ir.Name) else None
            var = checked.variables.get(name) if name else None
            if name == "t":
                plan.append(("t", None))
            elif var is not None and var.role == "condition":
                plan.append(("label" if var.type.kind == "label" else "input", name))
            else:
                plan.append(("state", None))
        return plan

    def velocity(self, x_t: Tensor, t: Tensor, cond: Conditions) -> Tensor:
        """v(x_t, t) of the ``predict velocity = v(x_t, t[, y])`` call: ``t`` is the time, a
        ``label`` condition the class input, any other condition an extra tensor input."""
        inputs, kw = [], {}
        for kind, name in self.velocity_args:
            if kind == "state":
                inputs.append(x_t)
            elif kind == "t":
                kw["t"] = t
            elif kind == "label":
                kw["y"] = cond.get(name)
            else:
                inputs.append(cond[name])
        return self.nets[self.predict_call.func](*inputs, **kw)

    def conditions(self, data: Mapping[str, Tensor]) -> Conditions:
        """The condition tensors present in ``data``."""
        return {name: data[name] for name in self.condition_names if name in data}

    def given_conditions(self, n: int, y: Any) -> Conditions:
        """Conditions for ``n`` samples: a tensor/number for the only condition or a mapping."""
        names = self.condition_names
        if y is None:
            return {}
        if not names:
            raise UsageError(f"model {self.checked.name} has no condition, but y was given")
        items = dict(y) if isinstance(y, Mapping) else {names[0]: y}
        out = {}
        for name, value in items.items():
            if self.checked.variables[name].type.kind == "label":
                value = torch.as_tensor(value, device=self.like.device).long()
                out[name] = value.expand(n) if value.ndim == 0 else value
            else:
                out[name] = torch.as_tensor(value, device=self.like.device, dtype=self.like.dtype)
        return out

    # -------------------------------------------------------------- loss

    def couple(
        self, x0: Tensor, x1: Tensor, cond: Conditions
    ) -> tuple[Tensor, Tensor, Conditions]:
        """The training pairs (x0, x1) and the conditions that go with x1."""
        if isinstance(self.coupling, Independent) and x0.shape[0] == x1.shape[0]:
            return x0, x1, cond
        i, j = self.coupling.pair(x0, x1)
        return x0[i], x1[j], {k: v[j] for k, v in cond.items()}

    def per_sample_loss(self, data: Mapping[str, Tensor]) -> Tensor:
        """‖v(x_t, t) − u_t‖² per pair (:func:`~gendsl.objectives.flow_matching.
        flow_matching_loss`)."""
        x1 = data[self.data_name]
        x0 = self.source_batch(data, x1.shape[0])
        x0, x1, cond = self.couple(x0, x1, self.conditions(data))
        return flow_matching_loss(lambda x, t: self.velocity(x, t, cond), self.path, x0, x1)

    def loss(self, batch: Batch) -> Tensor:
        """The mean of :meth:`per_sample_loss` over the batch."""
        return self.per_sample_loss(self.as_data(batch)).mean()

    def step_report(self) -> dict[str, float]:
        """``ot_gap``: the certified relative gap (cost − LB) / cost ≥ cost / OPT − 1 of the last
        batch's ``ot(exact)`` pairing (0 for POT's dense plan, exact up to rounding)."""
        gap = self.coupling.last_relative_gap
        return {"ot_gap": 0.0 if gap is None else gap}

    def diagnostics(self, batch: Batch) -> dict[str, float]:
        """The loss with t in each quarter of [0, 1] (``loss_t1`` nearest the source)."""
        data = self.as_data(batch)
        x1 = data[self.data_name]
        x0 = self.source_batch(data, x1.shape[0])
        x0, x1, cond = self.couple(x0, x1, self.conditions(data))
        out = {}
        for q in range(4):
            t = (q + sample_time(x1.shape[0], like=x1)) / 4
            with torch.no_grad():
                value = flow_matching_loss(
                    lambda x, t_: self.velocity(x, t_, cond), self.path, x0, x1, t=t
                )
            out[f"loss_t{q + 1}"] = float(value.mean())
        return out

    # -------------------------------------------------------------- sampling

    def solver_settings(
        self, method: str | None, steps: int | None, opts: Mapping[str, Any]
    ) -> dict[str, Any]:
        """The options of :func:`integrate` (``steps``, ``solver``, ``rtol``, ``atol``): the
        registry's defaults, the declared ``sample with ode(...)``, then ``method`` (``ode`` or a
        solver name), ``steps`` and ``opts``."""
        declared = self.checked.sampler
        knobs: dict[str, Any] = sampler_registry.declared("matching", "ode").defaults()
        if declared is not None:
            knobs.update(declared.kwargs)
        if method is not None and method != "ode":
            check_solver(method)
            knobs["solver"] = method
        knobs.update(opts)
        if steps is not None:
            knobs["steps"] = steps
        check_solver(knobs["solver"])
        return knobs

    def flow_fn(self, cond: Conditions) -> VelocityFn:
        """The velocity field the sampler and the likelihood integrate (counts evaluations in
        :attr:`last_nfe`)."""
        self.last_nfe = 0

        def v_fn(x: Tensor, t: Tensor) -> Tensor:
            self.last_nfe += 1
            return self.velocity(x, t, cond)

        return v_fn

    @torch.no_grad()
    def transport(
        self,
        x0: Tensor,
        *,
        method: str | None = None,
        steps: int | None = None,
        y: Any = None,
        **opts: Any,
    ) -> Tensor:
        """Φ(x0): ``x0`` carried from t = 0 to t = 1 by the learned flow."""
        knobs = self.solver_settings(method, steps, opts)
        return integrate(self.flow_fn(self.given_conditions(x0.shape[0], y)), x0, **knobs)

    @torch.no_grad()
    def sample(
        self,
        n: int,
        *,
        method: str | None = None,
        steps: int | None = None,
        generator: torch.Generator | None = None,
        y: Any = None,
        **opts: Any,
    ) -> Tensor:
        """``n`` samples: x0 ~ p0 carried to t = 1 (:meth:`transport`); the velocity
        evaluations spent are in :attr:`last_nfe`."""
        x0 = self.draw_source(n, generator=generator)
        return self.transport(x0, method=method, steps=steps, y=y, **opts)

    def straightness(
        self, n: int = 1000, *, steps: int = 100, generator: torch.Generator | None = None
    ) -> float:
        """S of the learned flow from ``n`` source draws (:func:`~gendsl.objectives.
        flow_matching.straightness`, Liu et al. 2023, eq. 7)."""
        x0 = self.draw_source(n, generator=generator)
        return float(straightness(lambda x, t: self.velocity(x, t, {}), x0, steps=steps))

    # -------------------------------------------------------------- likelihood

    def log_prob(
        self,
        x: Batch,
        *,
        y: Any = None,
        trace: str | None = None,
        method: str = "dopri5",
        steps: int | None = None,
        rtol: float = 1e-5,
        atol: float = 1e-5,
        ode_dtype: torch.dtype | None = torch.float64,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """log p(x) in nats per data point of the model's samples (:func:`flow_log_prob`):
        the exact divergence or Hutchinson's estimate as :func:`default_trace` picks for D.  The
        ODE state is carried in ``ode_dtype`` (float64 by default) while the network runs in its
        own dtype."""
        data = self.as_data(x)
        x1 = data[self.data_name]
        cond = {**self.conditions(data), **self.given_conditions(x1.shape[0], y)}
        trace = trace or default_trace(x1[0].numel())
        v_fn = self.flow_fn(cond)
        dtype = x1.dtype
        if ode_dtype is not None and ode_dtype != dtype:
            v_fn, x1 = _in_dtype(v_fn, dtype), x1.to(ode_dtype)
        p0 = self.source(x1.shape[0])
        lp = flow_log_prob(
            v_fn,
            x1,
            lambda z: p0.log_prob(z.to(dtype)).to(z.dtype),
            trace=trace,
            solver=method,
            steps=steps,
            rtol=rtol,
            atol=atol,
            generator=generator,
        )
        return lp.to(dtype)

    def bits_per_dim(self, x: Batch, **kwargs: Any) -> Tensor:
        """-log p(x) / (D ln 2) per data point, with :meth:`log_prob`'s options."""
        return -self.log_prob(x, **kwargs) / (math.prod(self.data_shape) * math.log(2.0))

    # -------------------------------------------------------------- description

    def coupling_text(self) -> str:
        """The coupling, in words."""
        return self.coupling.describe()

    def objective_terms(self) -> list[str]:
        k, s, d = self.kernel.texts, self.source_name, self.data_name
        v = self.predict_call.func
        return [
            f"flow_matching = E_t,({s},{d}),w || {v}({self.noised_name}, t) - u_t ||^2, "
            f"t ~ U[0, 1], w ~ N(0, I) (Lipman et al. 2023; Tong et al. 2024)",
            f"  {self.noised_name} = ({k['alpha']}) {s} + ({k['beta']}) {d} + ({k['gamma']}) w",
            f"  u_t = ({k['d_alpha']}) {s} + ({k['d_beta']}) {d} + ({k['d_gamma']}) w",
            f"  coupling: {self.coupling_text()}",
        ]

    def describe(self) -> str:
        """Family, sites, networks, the derived loss, and the default sampler with its NFE."""
        knobs = self.solver_settings(None, None, {})
        decl = sampler_registry.declared("matching", "ode")
        nfe = sampler_registry.nfe_text(decl, knobs["steps"], knobs)
        shown = ", ".join(f"{k} = {v}" for k, v in knobs.items() if v is not None)
        return f"{super().describe()}\npredict: velocity\nsampler: ode({shown}), NFE = {nfe}"


class ReflowModel(MatchingModel):
    """Rectified flow's reflow: training pairs (x0, Φ(x0)) with x0 ~ p0 and Φ the flow of a
    previous run (Liu, Gong & Liu 2023, Alg. 1); the data batch only sets the batch size.

    The previous model is the run ``reflow(previous = "runs/...")`` names (declared in
    ``capabilities.runs``, attached before training starts), opened on first use otherwise, or
    given with :meth:`set_previous`; it is not a submodule (neither trained nor saved).
    """

    def __init__(self, checked: CheckedModel, bindings: Mapping[str, int]):
        super().__init__(checked, bindings)
        if checked.condition_vars():
            raise UsageError("reflow pairs carry no conditions; remove the condition")
        self.previous_run = self.coupling_opt.kwargs.get("previous")
        self._previous: list[MatchingModel] = []
        if self.previous_run:
            what = "a trained flow-matching run (reflow's previous)"
            previous = PretrainedRun("previous", what, required=True, path=self.previous_run)
            self.capabilities = dataclasses.replace(self.capabilities, runs=(previous,))

    def attach_run(self, flag: str, path: Path) -> None:
        """``previous``: :meth:`set_previous`."""
        if flag != "previous":
            super().attach_run(flag, path)
        self.set_previous(path)

    def set_previous(self, previous: MatchingModel | str | Path) -> None:
        """Use ``previous`` (a compiled matching model, or a run directory / checkpoint) as Φ."""
        if not isinstance(previous, MatchingModel):
            from gendsl.lower.trained import compile_run
            from gendsl.trained import open_trained

            previous = compile_run(open_trained(previous)).to(self.like.device)
            if not isinstance(previous, MatchingModel):
                raise UsageError(
                    f"reflow needs a previous flow-matching run; {previous.checked.name} is a "
                    f"{previous.family} model"
                )
        if previous.data_shape != self.data_shape:
            raise UsageError(
                f"the previous run samples shape {previous.data_shape}, this model's data "
                f"has shape {self.data_shape}"
            )
        previous.eval()
        self._previous[:] = [previous]

    def previous(self) -> MatchingModel:
        """Φ's model, opened from ``previous = "..."`` on first use."""
        if not self._previous:
            if not self.previous_run:
                raise UsageError('reflow needs previous = "runs/<run>" (a trained flow)')
            self.set_previous(self.previous_run)
        return self._previous[0]

    def couple(
        self, x0: Tensor, x1: Tensor, cond: Conditions
    ) -> tuple[Tensor, Tensor, Conditions]:
        """(x0, Φ(x0)) with Φ the previous run's flow and its declared sampler."""
        previous = self.previous().to(x0.device)
        return x0, previous.transport(x0.to(previous.like.dtype)).to(x0.dtype), cond

    def coupling_text(self) -> str:
        return (
            f"reflow(previous = {self.previous_run!r}): (x0, Phi(x0)) from the previous flow "
            f"(Liu et al. 2023)"
        )


def build(checked: CheckedModel, bindings: Mapping[str, int]) -> MatchingModel:
    """The compiled model of a checked matching spec."""
    from gendsl.families.matching import transport_source

    if transport_source(checked) is not None:
        from gendsl.lower.transport import TransportModel

        return TransportModel(checked, bindings)
    reflow = checked.couple is not None and checked.couple.coupling.name == "reflow"
    return (ReflowModel if reflow else MatchingModel)(checked, bindings)
