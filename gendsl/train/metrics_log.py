"""``metrics.jsonl``: one JSON object per log line (step, loss, lr, time, eval metrics, ...)."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

__all__ = ["MetricsLog", "read_metrics"]


def _finite_or_none(value: object) -> object:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


class MetricsLog:
    """Append-only JSON-lines log, flushed after every line so a killed run keeps its history.

    :param resume_step: when resuming, drop lines logged after this step (they belong to the
        run that was interrupted and will be logged again); ``None`` starts an empty log.
    """

    def __init__(self, path: str | os.PathLike, *, resume_step: int | None = None):
        self.path = Path(path)
        kept = []
        if resume_step is not None and self.path.is_file():
            kept = [r for r in read_metrics(self.path) if r.get("step", 0) <= resume_step]
        with self.path.open("w") as f:
            f.writelines(json.dumps(r) + "\n" for r in kept)

    def write(self, record: dict[str, object]) -> None:
        """Append one record."""
        line = json.dumps({k: _finite_or_none(v) for k, v in record.items()})
        with self.path.open("a") as f:
            f.write(line + "\n")
            f.flush()


def read_metrics(path: str | os.PathLike) -> list[dict[str, object]]:
    """Every complete record of a metrics file (a line cut short by a kill is skipped)."""
    records = []
    for line in Path(path).read_text().splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records
