"""The runtime's half of the sampler registry: each sampler :mod:`gendsl.sampler_registry`
declares, bound to its pure function (one function per sampler, as in k-diffusion).

``DIFFUSION`` holds the samplers of the reverse diffusion, all with the signature of
:class:`~gendsl.sampling.common.Sampler` (run by :func:`gendsl.sampling.sample`);
``CONSISTENCY`` the consistency model's samplers (:func:`consistency_sample` on the model's
consistency function); ``MATCHING`` the matching family's velocity ODE; ``FLOW`` the flow
family's one pass from its base (:func:`~gendsl.sampling.flow.flow_ancestral`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType

from gendsl import sampler_registry
from gendsl.objectives.consistency import consistency_sample
from gendsl.sampling.common import Sampler
from gendsl.sampling.dpm_solver import dpm_solver
from gendsl.sampling.flow import flow_ancestral
from gendsl.sampling.ode import ddim, ode
from gendsl.sampling.stochastic import ancestral, euler_maruyama, pc, sde
from gendsl.sampling.unipc import unipc
from gendsl.sampling.velocity import integrate

__all__ = ["CONSISTENCY", "DIFFUSION", "FLOW", "MATCHING", "bound"]

DIFFUSION: Mapping[str, Sampler] = MappingProxyType(
    {
        "ancestral": ancestral,
        "euler_maruyama": euler_maruyama,
        "sde": sde,
        "ode": ode,
        "pc": pc,
        "ddim": ddim,
        "dpm_solver": dpm_solver,
        "unipc": unipc,
    }
)

CONSISTENCY: Mapping[str, Callable] = MappingProxyType(
    {"onestep": consistency_sample, "multistep": consistency_sample}
)

MATCHING: Mapping[str, Callable] = MappingProxyType({"ode": integrate})

FLOW: Mapping[str, Callable] = MappingProxyType({"ancestral": flow_ancestral})


def bound(family: str, name: str) -> Callable:
    """The function of the declared sampler ``name`` of ``family``."""
    decl = sampler_registry.declared(family, name)
    if "consistency" in decl.processes:
        return CONSISTENCY[name]
    return {"diffusion": DIFFUSION, "matching": MATCHING, "flow": FLOW}[family][name]
