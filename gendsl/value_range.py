"""A range of numbers an option may take, with the words diagnostics use for it (torch-free:
the checker and the sampler registry share it)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["AT_LEAST_ONE", "AT_LEAST_TWO", "NON_NEGATIVE", "ORDER", "POSITIVE", "Range"]


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
ORDER = Range(values=(1, 2, 3))
