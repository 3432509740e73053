"""What a finished job means for its trial: COMPLETE with a value, PRUNED, or FAIL — and why.

A job comes back from any Hydra launcher as a ``JobReturn``; its ``return_value`` property prints
"Error executing job" and re-raises a failed job's exception, so only ``status`` and ``_return_value``
are read here. Kinds of outcome:

- ``complete``: a finite number (one per direction) — COMPLETE;
- ``diverged``: NaN or ±inf (bn_study returns the worst value when training diverged) — FAIL, a result
  about the hyperparameters, so it does not count towards ``max_failure_rate``;
- ``invalid``: something that is not a number (a task returning None) — FAIL, logged, not counted
  either (Hydra's Optuna plugin let these through as well);
- ``pruned``: the job raised ``optuna.TrialPruned`` — PRUNED;
- ``crashed``: any other exception — FAIL, with its traceback in the log, counted.
"""

import math
import traceback
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import optuna
from hydra.core.utils import JobReturn, JobStatus
from optuna.trial import TrialState

from bn_study.errors import StoreError

# Set on a job's exception in the job's own process, where the traceback still exists (it does not
# survive the trip back from a joblib worker).
TRACEBACK_ATTR = "bn_study_traceback"

COUNTED_AS_FAILURE = ("crashed",)


@dataclass(frozen=True)
class TrialOutcome:
    kind: str  # complete | diverged | invalid | pruned | crashed
    state: TrialState
    values: list[float] | None
    detail: str = ""
    traceback: str | None = None
    job_status: str = ""  # bn_study's JobOutcome.status (finished, skipped, resumed, diverged), if any
    error: BaseException | None = field(default=None, compare=False)  # a crashed job's own exception

    @property
    def is_failure(self) -> bool:
        return self.kind in COUNTED_AS_FAILURE


def classify(ret: JobReturn, n_objectives: int = 1) -> TrialOutcome:
    value = ret._return_value  # never .return_value: it prints and re-raises a failed job's error
    if ret.status != JobStatus.COMPLETED:
        if isinstance(value, optuna.TrialPruned):
            return TrialOutcome("pruned", TrialState.PRUNED, None, str(value))
        # a store that cannot be written (a full disk) is said in its one line: its traceback tells nothing more
        return TrialOutcome("crashed", TrialState.FAIL, None, f"{type(value).__name__}: {value}",
                            None if isinstance(value, StoreError) else job_traceback(value), error=value)
    job_status = str(getattr(value, "status", ""))
    values = _as_floats(value, n_objectives)
    if values is None:
        expected = "a number" if n_objectives == 1 else f"{n_objectives} numbers"
        return TrialOutcome("invalid", TrialState.FAIL, None, f"returned {value!r}, not {expected}")
    if not all(math.isfinite(v) for v in values):
        detail = str(getattr(value, "detail", "")) or f"returned {values if n_objectives > 1 else values[0]}"
        return TrialOutcome("diverged", TrialState.FAIL, None, detail, job_status=job_status)
    return TrialOutcome("complete", TrialState.COMPLETE, values, job_status=job_status)


def _as_floats(value: Any, n: int) -> list[float] | None:
    try:
        if n == 1:
            return [float(value)]
        values = [float(v) for v in value]
    except (TypeError, ValueError):
        return None
    return values if len(values) == n else None


def job_traceback(exc: BaseException) -> str:
    """The traceback recorded in the job's process, else whatever the exception still carries."""
    recorded = getattr(exc, TRACEBACK_ATTR, None)
    if recorded:
        return str(recorded)
    return "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))


def keep_traceback(exc: BaseException) -> None:
    """Record the traceback on the exception itself, so it survives pickling back to the sweeper."""
    try:
        setattr(exc, TRACEBACK_ATTR, "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)))
    except (AttributeError, TypeError):  # an exception type that takes no attributes
        pass


def failure_rate(outcomes: Sequence[TrialOutcome]) -> float:
    return sum(o.is_failure for o in outcomes) / len(outcomes) if outcomes else 0.0
