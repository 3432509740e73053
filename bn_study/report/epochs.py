"""Epochs to a threshold, per run: the speed scale of *faster* claims, with runs that never got there censored
(counted as one epoch past what they were given)."""

from __future__ import annotations

from bn_study.report.collect import Condition, RunRecord
from bn_study.report.failures import FAILED
from bn_study.report.spec import higher_is_better


def epochs_to_reach(run: RunRecord, metric: str, threshold: float) -> int | None:
    """The first epoch (≥ 1) at which the metric reached the threshold; None if it never did."""
    up = higher_is_better(metric)
    for step, value in sorted((run.history.get(metric) or {}).items()):
        if step >= 1 and (value >= threshold if up else value <= threshold):
            return step
    return None


def censored_epochs(cond: Condition, metric: str, threshold: float) -> tuple[list[float], int]:
    """Epochs-to-threshold per finished run; a run that never got there counts as (its last epoch + 1),
    i.e. at least one more epoch than it was given. Returns the values and how many were censored."""
    values, censored = epochs_by_run(cond, metric, threshold, with_failed=False)
    return [v for _, v in values], censored


def _planned_epochs(run: RunRecord) -> int:
    try:
        return int(run.choices.get("epochs", ""))
    except ValueError:
        return run.last_step("train_loss") or 0


def epochs_by_run(cond: Condition, metric: str, threshold: float,
                   with_failed: bool) -> tuple[list[tuple[RunRecord, float]], int]:
    out, censored = [], 0
    for run in cond.runs:
        if run.finished:
            hit = epochs_to_reach(run, metric, threshold)
            if hit is None:
                censored += 1
                hit = (run.last_step(metric) or 0) + 1
        elif with_failed and run.status == FAILED:
            censored += 1  # a failed run never reached it within what it was given
            hit = _planned_epochs(run) + 1
        else:
            continue
        out.append((run, float(hit)))
    return out, censored
