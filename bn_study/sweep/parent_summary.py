"""The sweep's result on its parent run, where the MLflow UI shows it first: per condition, the seeds, the
objective's mean ± 95 % CI and how many runs finished or failed — as a table artifact (``summary.json``),
as the run's description, and as metrics (``val_acc_mean/<condition>``) that the UI's charts can show."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from mlflow.entities import Run

from bn_study.report.stats import Summary, summarize
from bn_study.tracking.condition import DEFAULTS
from bn_study.tracking.naming import readable
from bn_study.util.text import plural

SUMMARY_ARTIFACT = "summary.json"
DIGITS = 4  # how the description and the table round the objective (the metrics keep every digit)


@dataclass(frozen=True)
class ConditionResult:
    condition: str
    seeds: tuple[int, ...]
    finished: int
    failed: int  # FAILED (diverged, crashed) or KILLED
    objective: Summary | None  # over the finished runs' last values


def condition_results(runs: Iterable[Run], metric: str, order: Sequence[str] = ()) -> list[ConditionResult]:
    """One result per condition tag, in ``order`` (the sweep's jobs) and then by name."""
    by_condition: dict[str, list[Run]] = {}
    for r in runs:
        if "condition" in r.data.tags:
            by_condition.setdefault(r.data.tags["condition"], []).append(r)
    rank = {c: i for i, c in enumerate(dict.fromkeys(order))}
    out = []
    for condition in sorted(by_condition, key=lambda c: (rank.get(c, len(rank)), c)):
        runs_of = by_condition[condition]
        finished = [r for r in runs_of if r.info.status == "FINISHED"]
        values = [r.data.metrics[metric] for r in finished
                  if metric in r.data.metrics and math.isfinite(r.data.metrics[metric])]
        seeds = sorted(int(r.data.tags["seed"]) for r in runs_of if r.data.tags.get("seed", "").isdigit())
        out.append(ConditionResult(condition, tuple(seeds), len(finished),
                                   sum(r.info.status in ("FAILED", "KILLED") for r in runs_of), summarize(values)))
    return out


def _mean_ci(s: Summary | None) -> str:
    if s is None:
        return "—"
    return f"{s.mean:.{DIGITS}f}" + ("" if s.half is None else f" ± {s.half:.{DIGITS}f}")


def _seeds(seeds: Sequence[int]) -> str:
    return ",".join(str(s) for s in seeds) or "—"


def table(results: Sequence[ConditionResult], metric: str) -> dict[str, list]:
    """The summary as columns, for ``MlflowClient.log_table``; numbers rounded as people read them."""
    def rounded(x: float | None) -> float | None:
        return None if x is None else round(x, DIGITS)

    return {
        "condition": [readable(r.condition) for r in results],
        "seeds": [_seeds(r.seeds) for r in results],
        f"{metric} mean": [rounded(r.objective.mean if r.objective else None) for r in results],
        "95 % CI ±": [rounded(r.objective.half if r.objective else None) for r in results],
        "finished": [r.finished for r in results],
        "failed": [r.failed for r in results],
    }


def description(results: Sequence[ConditionResult], metric: str, direction: str, command: str,
                defaults: str = "") -> str:
    """The parent's description (Markdown, as the UI renders it): the result first, then how to read it;
    ``defaults``: the default of each setting the conditions name, which a condition leaving it out has."""
    scored = [r for r in results if r.objective is not None]
    lines = [f"**{command}** — {plural(len(results), 'condition')}, {plural(sum(len(r.seeds) for r in results), 'run')}. "
             f"`{metric}` at the last epoch, mean ± 95 % t-interval over the finished seeds "
             f"({'higher' if direction == 'maximize' else 'lower'} is better).", ""]
    if scored:
        best = (max if direction == "maximize" else min)(scored, key=lambda r: r.objective.mean)
        lines += [f"Best: `{readable(best.condition)}` — {_mean_ci(best.objective)}.", ""]
    lines += [f"| condition | seeds | {metric} | finished | failed |", "|---|---|---|---|---|"]
    lines += [f"| `{readable(r.condition)}` | {_seeds(r.seeds)} | {_mean_ci(r.objective)} | {r.finished} | {r.failed} |"
              for r in results]
    if defaults:
        lines += ["", f"A condition names only the settings that differ from the defaults; one that leaves a "
                      f"setting out (`{DEFAULTS}` leaves out all) has its default: `{readable(defaults)}`."]
    lines += ["", "Runs of one condition differ only in their seed: in the runs table, group by the tag "
              "`condition` and chart `" + metric + "`."]
    return "\n".join(lines)


def metric_key(condition: str) -> str:
    """A condition as part of an MLflow metric key (letters, digits, ``_-. :/`` only; ``=`` becomes ``:``)."""
    key = "".join(c if c.isalnum() or c in "-_. " else ":" if c == "=" else "_" for c in readable(condition))
    return key[:200]


def metrics(results: Sequence[ConditionResult], metric: str) -> dict[str, float]:
    """``val_acc_mean/<condition>`` and ``val_acc_ci95/<condition>``: one chart section each in the UI."""
    out: dict[str, float] = {}
    for r in results:
        if r.objective is not None:
            out[f"{metric}_mean/{metric_key(r.condition)}"] = r.objective.mean
            if r.objective.half is not None:
                out[f"{metric}_ci95/{metric_key(r.condition)}"] = r.objective.half
    return out
