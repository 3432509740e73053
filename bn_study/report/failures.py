"""Failed runs (diverged or crashed) are left out of means and verdicts, and then put back at the worst value,
so a reader sees whether a verdict rests on dropping them."""

from __future__ import annotations

import math
from collections.abc import Sequence

from bn_study.data.catalog import DATASETS
from bn_study.report.collect import Condition, RunRecord
from bn_study.report.spec import higher_is_better
from bn_study.report.stats import Summary, summarize

FAILED = "FAILED"  # a run that diverged or crashed; KILLED or still RUNNING runs are merely missing


def worst_value(metric: str, conditions: Sequence[Condition]) -> float:
    """What a failed run counts as: chance accuracy for an accuracy, else the worst value any run of the
    study logged for that metric (the loss a run shows when it diverges is no better than that)."""
    if higher_is_better(metric):
        names = {c.choices.get("data.name", "mnist") for c in conditions}
        classes = max((len(DATASETS[n].classes) for n in names if n in DATASETS), default=10)
        return 100.0 / classes
    seen = [v for c in conditions for r in c.runs for v in (r.history.get(metric) or {}).values() if math.isfinite(v)]
    return max(seen) if seen else math.inf


def failed_runs(cond: Condition | None) -> int:
    return 0 if cond is None else sum(r.status == FAILED for r in cond.runs)


def run_values(cond: Condition, metric: str, epoch: int | None, worst: float | None) -> list[tuple[RunRecord, float]]:
    """Each finished run's finite ``metric`` at ``epoch`` (None: its last), and each failed run at ``worst``
    (left out when ``worst`` is None)."""
    out = []
    for r in cond.runs:
        v = r.value(metric, epoch) if r.finished else None
        if v is not None and math.isfinite(v):
            out.append((r, v))
        elif worst is not None and r.status == FAILED:
            out.append((r, worst))
    return out


def by_seed(pairs: Sequence[tuple[RunRecord, float]]) -> dict[int, float]:
    """Values keyed by their run's seed (runs without one left out): how paired analyses match arms."""
    return {r.seed: v for r, v in pairs if r.seed is not None}


def failure_sensitivity(cond: Condition, metric: str, conditions: Sequence[Condition]) -> tuple[Summary | None, float] | None:
    """The condition's ``metric`` at the last epoch with its failed runs counted at the worst value, and
    that value; None when no run of it failed."""
    if not failed_runs(cond):
        return None
    worst = worst_value(metric, conditions)
    values = [v for _, v in run_values(cond, metric, None, worst) if math.isfinite(v)]
    return summarize(values), worst

