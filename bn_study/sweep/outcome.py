"""What a job hands back to its sweeper: the objective as a float, plus what happened to it."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bn_study.train.loop import EpochReport

STATUSES = ("finished", "resumed", "skipped", "diverged", "held")


class JobOutcome(float):
    """A float (any sweeper can use it as the objective) that also says whether the job trained,
    resumed from a checkpoint, was skipped because its runs had already finished, or diverged — or was held:
    another live launch trains its members, and the sweeper comes back to it once they are done."""

    status: str
    detail: str

    def __new__(cls, value: float, status: str, detail: str = "") -> JobOutcome:
        if status not in STATUSES:
            raise ValueError(f"unknown job status {status!r}")
        obj = super().__new__(cls, value)
        obj.status, obj.detail = status, detail
        return obj

    def __reduce__(self) -> tuple[Any, ...]:  # survives the trip back from a joblib worker
        return (JobOutcome, (float(self), self.status, self.detail))

    def __repr__(self) -> str:
        return f"JobOutcome({float(self)!r}, {self.status!r})"


def worst_value(direction: str) -> float:
    return math.inf if direction == "minimize" else -math.inf


def objective_value(reports: Sequence["EpochReport"], failures: Sequence[str | None], metric: str,
                    direction: str) -> float:
    """The final epoch's metric, averaged over members; the worst possible value if any member failed."""
    if not reports or any(failures):
        return worst_value(direction)
    values = [m[metric] for m in reports[-1].metrics]
    return sum(values) / len(values)
