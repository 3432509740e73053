"""Time to a threshold, per run, in epochs or optimizer steps: the scale of *faster* claims, with runs that never
got there censored (counted as one epoch past what they were given)."""

from __future__ import annotations

from bn_study.report.collect import Condition, RunRecord
from bn_study.report.failures import FAILED
from bn_study.report.spec import STEPS, higher_is_better

STEPS_METRIC = "steps"  # the optimizer steps a run had made at each epoch's end (train/loop.py)


def epochs_to_reach(run: RunRecord, metric: str, threshold: float) -> int | None:
    """The first epoch (≥ 1) at which the metric reached the threshold; None if it never did."""
    up = higher_is_better(metric)
    for step, value in sorted((run.history.get(metric) or {}).items()):
        if step >= 1 and (value >= threshold if up else value <= threshold):
            return step
    return None


def _planned_epochs(run: RunRecord) -> int:
    try:
        return int(run.choices.get("epochs", ""))
    except ValueError:
        return run.last_step("train_loss") or 0


def steps_at(run: RunRecord, epoch: int) -> float | None:
    """The optimizer steps made by the end of ``epoch``; past the last logged epoch, extrapolated by the
    last epoch's length (what one more epoch would have added)."""
    steps = run.history.get(STEPS_METRIC) or {}
    if not steps:
        return None
    if epoch in steps:
        return steps[epoch]
    last = max(steps)
    length = steps[last] - steps.get(last - 1, 0.0) if last - 1 in steps or last == 1 else steps[last] / last
    return steps[last] + (epoch - last) * length


def epochs_by_run(cond: Condition, metric: str, threshold: float, with_failed: bool,
                  by: str = "epochs") -> tuple[list[tuple[RunRecord, float]], int, float]:
    """Per run, the epochs (or steps) it needed to reach the threshold, how many runs are censored, and the
    grain of those times: a finished run that never got there counts as its last epoch + 1, a failed one
    (``with_failed``) as its planned epochs + 1. Runs are read at epoch ends, so a time E means "somewhere in
    (E − 1, E]": the grain is one epoch, or in steps the longest epoch (in steps) any of the times ends.
    A run without a ``steps`` metric is left out of a count in steps."""
    out, censored, grain = [], 0, 0.0
    for run in cond.runs:
        if run.finished:
            hit = epochs_to_reach(run, metric, threshold)
            late = hit is None
            if late:
                hit = (run.last_step(metric) or 0) + 1
        elif with_failed and run.status == FAILED:
            late, hit = True, _planned_epochs(run) + 1  # a failed run never reached it within what it was given
        else:
            continue
        value = float(hit) if by != STEPS else steps_at(run, hit)
        if value is None:
            continue
        before = 0.0 if by != STEPS or hit <= 1 else steps_at(run, hit - 1)
        grain = max(grain, 1.0 if by != STEPS else value - (before or 0.0))
        censored += late
        out.append((run, value))
    return out, censored, grain
