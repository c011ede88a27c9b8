"""Per-step training metrics kept on the device until the loop needs them.

Every step writes its metrics (loss, gradient norm, ...) as one row of a preallocated device
buffer with one kernel and no host read, so the accelerator can run ahead of Python.  At a
*sync point* (a log line, an evaluation, a checkpoint, the end) :meth:`Tally.settle` reads the
rows written since the last sync once: it averages them over the ranks of a distributed run,
finds the first non-finite row (the step the loop names when training diverged) and returns.
:meth:`Tally.window_means` gives the log line's means over the rows since the last log line.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
from torch import Tensor

from gendsl.errors import InternalError, TrainingError

__all__ = ["Tally", "divergence_message"]


def divergence_message(step: int, bad: Mapping[str, float], last_saved: int, path: str) -> str:
    """The message of a diverged run: the first bad step, its values and what was kept."""
    kept = (
        f"the checkpoint of step {last_saved} at {path} is kept"
        if last_saved
        else "no checkpoint was written"
    )
    detail = ", ".join(f"{k} = {v}" for k, v in bad.items())
    return f"training diverged at step {step}: {detail}; {kept}"


def _as_tensor(value: object, device: torch.device) -> Tensor:
    if isinstance(value, Tensor):
        return value.detach().reshape(()).float()
    return torch.tensor(float(value), device=device)  # a model that returned a float


class Tally:
    """Rows of per-step metrics on ``device``.

    :param capacity: the most rows between two log lines (``log_every``).
    :param reduce: averages a ``[rows, metrics]`` tensor over the ranks in place (distributed
        runs), or None.
    """

    def __init__(self, device: torch.device, capacity: int, reduce=None):
        self.device = device
        self.capacity = capacity
        self.reduce = reduce
        self.names: list[str] = []
        self.rows: Tensor | None = None
        self.first_step = 1  # the step of row 0
        self.filled = 0  # rows written since the last log line
        self.settled = 0  # rows already read (and reduced) by a sync point

    def _allocate(self, names: list[str]) -> None:
        self.names = names
        self.rows = torch.zeros(self.capacity, len(names), device=self.device)

    def add(self, step: int, metrics: Mapping[str, object]) -> None:
        """Write the metrics of ``step`` (0-dim tensors, or floats) as the next row."""
        if self.rows is None:
            self._allocate(list(metrics))
        elif list(metrics) != self.names:
            raise InternalError(
                f"a training step returned metrics {sorted(metrics)} after {sorted(self.names)}"
            )
        if self.filled == 0:
            self.first_step = step
        if self.filled >= self.capacity:
            raise InternalError(f"more than {self.capacity} steps between two log lines")
        values = [_as_tensor(metrics[k], self.device) for k in self.names]
        torch.stack(values, out=self.rows[self.filled])
        self.filled += 1

    def settle(self) -> tuple[int, dict[str, float]] | None:
        """Read the rows since the last sync point (one host read, one collective in a
        distributed run); the first non-finite step and its bad values, or None."""
        if self.rows is None or self.settled == self.filled:
            return None
        first = self.settled
        new = self.rows[first : self.filled]
        if self.reduce is not None:
            self.reduce(new)
        values = new.cpu().double()  # float64 on the host (MPS has none)
        self.settled = self.filled
        bad_rows = (~torch.isfinite(values)).any(dim=1).nonzero()
        if len(bad_rows) == 0:
            return None
        row = int(bad_rows[0])
        bad = {k: float(v) for k, v in zip(self.names, values[row].tolist(), strict=True)}
        step = self.first_step + first + row
        return step, {k: v for k, v in bad.items() if not math.isfinite(v)}

    def check(self, last_saved: int, path: str) -> None:
        """:meth:`settle`, raising :class:`TrainingError` at the first non-finite step."""
        found = self.settle()
        if found is not None:
            raise TrainingError(divergence_message(*found, last_saved, path))

    def window_means(self) -> dict[str, float]:
        """The mean of every metric over the rows since the last log line (settled first)."""
        if self.rows is None or self.filled == 0:
            return {}
        sums = self.rows[: self.filled].cpu().double().sum(dim=0).tolist()
        return {k: s / self.filled for k, s in zip(self.names, sums, strict=True)}

    def clear(self) -> None:
        """Start the next log line's window."""
        self.filled = self.settled = 0

    def state_dict(self) -> dict[str, object]:
        """The rows of the current window, so that a resumed run logs what an uninterrupted
        one does (settle first: the rows are the reduced ones)."""
        rows = None if self.rows is None else self.rows[: self.filled].cpu().clone()
        return {"names": list(self.names), "first_step": self.first_step, "rows": rows}

    def load_state_dict(self, state: Mapping[str, object]) -> None:
        """Restore :meth:`state_dict` (or the per-name lists of earlier checkpoints)."""
        if "names" not in state:  # {name: [values]} of format-1 checkpoints before the tally
            names = list(state)
            count = len(state[names[0]]) if names else 0
            rows = torch.tensor([[state[k][i] for k in names] for i in range(count)])
            state = {"names": names, "first_step": 0, "rows": rows if count else None}
        if state["rows"] is None or not state["names"]:
            return
        n = state["rows"].shape[0]
        self.capacity += n  # room for a window restored under a different log interval
        self._allocate(list(state["names"]))
        self.rows[:n] = state["rows"].to(self.device)
        self.filled = self.settled = n
        self.first_step = int(state["first_step"])
