"""The ranges of the library's numeric options, checked where the spec writes them.

The value kinds of :mod:`gendsl.analysis.library` say *what* an option takes (a number, a whole
number >= 0); this table says which values make sense, so that ``sample with dpm_solver(steps =
0)``, ``guidance classifier_free(drop = 1.5)`` or ``train { lr = 0 }`` get a located error from
``gendsl check`` instead of a refusal (or a NaN) at run time.  Each range is the one the back end
enforces (the samplers, objectives, networks and the training loop raise on values outside it).

A range is looked up by (family, option, parameter), then (option, parameter), then the
parameter alone; the first found applies, ``None`` meaning "no range beyond the value kind".
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

__all__ = ["Range", "out_of_range", "range_of"]


@dataclass(frozen=True)
class Range:
    """``low <(=) value <(=) high`` (either end may be absent), or one of ``values``."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    values: tuple[int, ...] = ()
    even: bool = False

    def holds(self, v: float) -> bool:
        """Whether ``v`` lies in the range."""
        if self.values:
            return v in self.values
        if self.low is not None and (v < self.low or (self.low_open and v == self.low)):
            return False
        if self.high is not None and (v > self.high or (self.high_open and v == self.high)):
            return False
        return not self.even or v % 2 == 0

    def text(self) -> str:
        """``> 0``, ``>= 1``, ``in [0, 1)``, ``1, 2 or 3``, ``even and >= 2``."""
        if self.values:
            *head, last = (str(v) for v in self.values)
            return f"{', '.join(head)} or {last}"
        if self.low is not None and self.high is not None:
            left, right = "(" if self.low_open else "[", ")" if self.high_open else "]"
            text = f"in {left}{_num(self.low)}, {_num(self.high)}{right}"
        elif self.low is not None:
            text = f"{'>' if self.low_open else '>='} {_num(self.low)}"
        else:
            text = f"{'<' if self.high_open else '<='} {_num(self.high)}"
        return f"even and {text}" if self.even else text


def _num(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else repr(v)


POSITIVE = Range(0, low_open=True)
NON_NEGATIVE = Range(0)
AT_LEAST_ONE = Range(1)
AT_LEAST_TWO = Range(2)
OPEN_UNIT = Range(0, 1, low_open=True, high_open=True)
UNIT = Range(0, 1)
HALF_OPEN_UNIT = Range(0, 1, high_open=True)
ORDER = Range(values=(1, 2, 3))
EVEN_DIM = Range(2, even=True)

#: Ranges by parameter name, wherever it appears.
_BY_PARAM: Mapping[str, Range | None] = MappingProxyType(
    {
        "steps": AT_LEAST_ONE,
        "order": ORDER,
        "rtol": POSITIVE,
        "atol": POSITIVE,
        "snr": POSITIVE,
        "eta": NON_NEGATIVE,
        "rho": POSITIVE,
        "sigma_cap": POSITIVE,
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
        "corrector_steps": NON_NEGATIVE,
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
    }
)

#: The samplers of the diffusion family that integrate the reverse process: their last step is
#: the denoising (Tweedie) step, so they need two steps at least.
_ONE_PASS = ("onestep", "multistep")


def range_of(option: str, param: str, *, family: str | None = None) -> Range | None:
    """The range of ``param`` of the library option ``option`` (module docstring)."""
    if family == "diffusion" and param == "steps" and option not in _ONE_PASS:
        return AT_LEAST_TWO
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
