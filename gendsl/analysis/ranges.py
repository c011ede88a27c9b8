"""The ranges of the library's numeric options, checked where the spec writes them.

The value kinds of :mod:`gendsl.analysis.library` say *what* an option takes (a number, a whole
number >= 0); this table says which values make sense, so that ``sample with dpm_solver(steps =
0)``, ``guidance classifier_free(drop = 1.5)`` or ``train { lr = 0 }`` get a located error from
``gendsl check`` instead of a refusal (or a NaN) at run time.  Each range is the one the back end
enforces (the samplers, objectives, networks and the training loop raise on values outside it).

A sampler's ranges (and its schedule's) are those :mod:`gendsl.sampler_registry` declares; any
other range is looked up by (option, parameter), then the parameter alone; the first found
applies, ``None`` meaning "no range beyond the value kind".
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from gendsl import sampler_registry as samplers
from gendsl.value_range import AT_LEAST_ONE, NON_NEGATIVE, POSITIVE, Range

__all__ = ["out_of_range", "range_of"]


OPEN_UNIT = Range(0, 1, low_open=True, high_open=True)
UNIT = Range(0, 1)
HALF_OPEN_UNIT = Range(0, 1, high_open=True)
EVEN_DIM = Range(2, even=True)

#: Ranges by parameter name, wherever it appears.
_BY_PARAM: Mapping[str, Range | None] = MappingProxyType(
    {
        "steps": AT_LEAST_ONE,
        "rtol": POSITIVE,
        "atol": POSITIVE,
        "gamma": POSITIVE,
        "sigma": POSITIVE,
        "sigma_data": POSITIVE,
        "projections": AT_LEAST_ONE,
        "k": AT_LEAST_ONE,
        "beta": NON_NEGATIVE,
        "free_bits": NON_NEGATIVE,
        "commitment": NON_NEGATIVE,
        "decay": OPEN_UNIT,
        "buffer": AT_LEAST_ONE,
        "reinit": UNIT,
        "step": POSITIVE,
        "noise": NON_NEGATIVE,
        "c": POSITIVE,
        "weight": POSITIVE,
        "reg": POSITIVE,
        "drop": HALF_OPEN_UNIT,
        "scale": NON_NEGATIVE,
        "hidden": AT_LEAST_ONE,
        "channels": AT_LEAST_ONE,
        "blocks": AT_LEAST_ONE,
        "groups": AT_LEAST_ONE,
        "kernel": AT_LEAST_ONE,
        "classes": AT_LEAST_ONE,
        "time_dim": AT_LEAST_ONE,
        "time_scale": POSITIVE,
        "cond_dim": AT_LEAST_ONE,
        "dim": EVEN_DIM,
        "lr": POSITIVE,
        "betas": HALF_OPEN_UNIT,
        "weight_decay": NON_NEGATIVE,
        "batch": AT_LEAST_ONE,
        "ema": OPEN_UNIT,
        "grad_clip": POSITIVE,
        "critic_steps": AT_LEAST_ONE,
        "eval_every": AT_LEAST_ONE,
        "warmup": NON_NEGATIVE,
    }
)

#: Ranges of one option's parameter, by (option, parameter).
_BY_OPTION: Mapping[tuple[str, str], Range | None] = MappingProxyType(
    {
        ("langevin", "steps"): NON_NEGATIVE,
        ("batchnorm", "momentum"): UNIT,
        ("sgd", "momentum"): NON_NEGATIVE,
        ("linear", "start"): None,
        ("linear", "end"): None,
        ("permute", "seed"): None,
        ("ot", "gap"): HALF_OPEN_UNIT,
    }
)


def range_of(option: str, param: str, *, family: str | None = None) -> Range | None:
    """The range of ``param`` of the library option ``option`` (module docstring); a sampler's
    options and the schedules' are declared in :mod:`gendsl.sampler_registry`."""
    found, declared = samplers.option_range(family, option, param)
    if found:
        return declared
    if (option, param) in _BY_OPTION:
        return _BY_OPTION[option, param]
    return _BY_PARAM.get(param)


def out_of_range(
    option: str, param: str, value: Any, *, family: str | None = None
) -> tuple[Range, float] | None:
    """(the range, the offending number) when ``value`` (a number or a list of numbers) is
    outside the range of ``option``'s ``param``; None when it fits."""
    found = range_of(option, param, family=family)
    if found is None or value is None or isinstance(value, bool):
        return None
    for v in value if isinstance(value, list) else [value]:
        number = isinstance(v, int | float) and not isinstance(v, bool)
        if number and not (math.isfinite(v) and found.holds(v)):
            return found, v
    return None
