"""What the terminal says of each trial of a search and of a study's best: one line, numbers as people read
them (the trial's params in Optuna and MLflow keep every digit)."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import optuna

from bn_study.sweep import space as optuna_space
from bn_study.sweep.results import best_trial
from bn_study.sweep.trial_outcome import TrialOutcome
from bn_study.tracking.naming import readable

log = logging.getLogger("bn_study.sweep.search")


def shown_params(params: Mapping[str, Any]) -> str:
    return readable(" ".join(optuna_space.as_override(k, v) for k, v in params.items()))


def log_outcome(study_name: str, number: int, params: Mapping[str, Any], outcome: TrialOutcome,
                metric_names: Sequence[str] | None, final: bool = False,
                measured: Mapping[str, float] | None = None) -> None:
    """A trial's line, or a final run's (``measured``: its test metrics, measured once)."""
    what = f"final run of trial {number}" if final else f"trial {number}"
    state = outcome.kind if final else outcome.state.name  # a final run is no trial: it has no state
    head = f"study {study_name!r} {what} ({shown_params(params) or 'no params'}): {state}"
    if outcome.kind == "complete":
        names = list(metric_names or [])
        values = ", ".join(f"{names[i]} {v:.4g}" if i < len(names) else f"{v:.6g}"
                           for i, v in enumerate(outcome.values or []))
        note = "" if outcome.job_status in ("", "finished") else f" ({outcome.job_status})"
        if measured:  # the number the final stage is for: the test set, measured once
            values += " on the held-out split; " + ", ".join(f"{k} {v:.4g}" for k, v in measured.items())
        log.info("%s %s%s", head, values, note)
    elif outcome.kind == "pruned":
        log.info("%s — %s", head, outcome.detail)
    elif outcome.kind == "crashed":
        log.error("%s — the job crashed:\n%s", head, outcome.traceback or outcome.detail)
    else:
        log.warning("%s — %s", head, outcome.detail)


def log_best(study: optuna.Study) -> None:
    if len(study.directions) > 1:
        log.info("study %r: %d Pareto-optimal trials", study.study_name, len(study.best_trials))
        return
    best = best_trial(study)
    if best is None:
        log.warning("study %r has no completed trial yet", study.study_name)
        return
    log.info("study %r: best trial %d, value %.6g, params %s", study.study_name, best.number, best.value,
             shown_params(best.params))
