"""The end of a multirun: one line per job — finished, resumed, skipped, diverged, crashed, pruned —
as a rich table, and whether the sweep as a whole failed."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from hydra.core.utils import JobReturn, JobStatus
from rich.table import Table
from rich.text import Text

from bn_study.ui import get_console
from bn_study.sweep.space import as_override
from bn_study.tracking.condition import condition_of_job
from bn_study.tracking.naming import readable
from bn_study.util.text import plural

FAILING = ("diverged", "crashed")


@dataclass(frozen=True)
class JobRow:
    index: int
    overrides: str
    status: str
    objective: float | None
    detail: str


def job_row(index: int, ret: JobReturn) -> JobRow:
    """The job's line: its condition (the settings that differ from the defaults), how it ended, its value."""
    overrides = readable(condition_of_job(ret.cfg, ret.hydra_cfg))
    value = ret._return_value  # never .return_value: it prints and re-raises a failed job's error
    if ret.status == JobStatus.COMPLETED:
        status = getattr(value, "status", "finished")
        objective = float(value) if isinstance(value, (int, float)) else None
        return JobRow(index, overrides, status, objective, getattr(value, "detail", ""))
    kind = type(value).__name__
    status = "pruned" if kind == "TrialPruned" else "crashed"
    return JobRow(index, overrides, status, None, f"{kind}: {value}".splitlines()[0][:200])


def counts(rows: Sequence[JobRow]) -> dict[str, int]:
    return dict(Counter(r.status for r in rows))


def any_failed(rows: Sequence[JobRow]) -> bool:
    return any(r.status in FAILING for r in rows)


def print_summary(rows: Sequence[JobRow], title: str = "multirun summary") -> None:
    table = Table(title=title, title_justify="left")
    for name, style in (("#", "dim"), ("job", ""), ("status", ""), ("objective", ""), ("detail", "dim")):
        table.add_column(name, style=style, overflow="fold")
    colour = {"finished": "green", "resumed": "green", "skipped": "cyan", "pruned": "yellow",
              "diverged": "red", "crashed": "red", "held": "yellow"}
    for r in rows:
        shown = "" if r.objective is None or not math.isfinite(r.objective) else f"{r.objective:.4f}"
        table.add_row(str(r.index), r.overrides, Text(r.status, style=colour.get(r.status, "")), shown, r.detail)
    console = get_console()
    console.print(table)
    tally = ", ".join(f"{n} {status}" for status, n in sorted(counts(rows).items()))
    console.print(f"{plural(len(rows), 'job')}: {tally}")


def trial_row(number: int, params: Mapping[str, Any], outcome: Any, prefix: str = "") -> JobRow:
    """An Optuna trial's line (``outcome``: its ``sweep.trial_outcome.TrialOutcome``)."""
    status = {"complete": outcome.job_status or "finished"}.get(outcome.kind, outcome.kind)
    value = outcome.values[0] if outcome.values else None
    shown = readable(" ".join(as_override(k, v) for k, v in params.items()))  # the trial's params keep every digit
    detail = outcome.detail.splitlines()[0][:200] if outcome.detail else ""
    return JobRow(number, prefix + shown, status, value, detail)
