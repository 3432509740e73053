"""What a search found, as ``optimization_results.yaml`` says it: Hydra's Optuna plugin's keys (``name``,
``best_params``, ``best_value``, or ``solutions`` for several objectives), plus the storage, each arm's entry,
the final stage's outcome and the states of this run's trials."""

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import optuna

from bn_study.sweep.trial_outcome import TrialOutcome


def readable_number(value: float | None, digits: int = 6) -> float | None:
    """A value as a file people read holds it: ``digits`` significant digits (MLflow keeps every digit)."""
    return None if value is None else float(f"{value:.{digits}g}")


def best_trial(study: optuna.Study) -> optuna.trial.FrozenTrial | None:
    try:
        return study.best_trial
    except ValueError:  # no completed trial
        return None


def without_completed_trial(studies: Sequence[tuple[list[str], optuna.Study]]) -> list[str]:
    """The single-objective studies with no best trial (a multi-objective study's front may be empty)."""
    return [study.study_name for _, study in studies if len(study.directions) == 1 and best_trial(study) is None]


def results_document(studies: Sequence[tuple[list[str], optuna.Study]], arm_label: Callable[[list[str]], str],
                     where: str, final_outcomes: Mapping[str, TrialOutcome],
                     state_counts: dict[str, int],
                     final_metrics: Mapping[str, Mapping[str, Any]] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"name": "optuna", "storage": where}
    entries = {}
    for arm, study in studies:
        entry: dict[str, Any] = {"study_name": study.study_name}
        if len(study.directions) > 1:
            entry["solutions"] = [{"params": t.params, "values": t.values} for t in study.best_trials]
        else:
            best = best_trial(study)
            entry["best_params"] = dict(best.params) if best else None
            entry["best_value"] = best.value if best else None  # Hydra's plugin's keys: every digit
            entry["best_trial"] = best.number if best else None
        final = final_outcomes.get(study.study_name)
        if final is not None:
            # explicit names: the objective again (on the split it was tuned on) and the test set, measured once
            entry["final"] = {"state": final.kind, **(final_metrics or {}).get(study.study_name, {}),
                              "detail": final.detail}
        entries[arm_label(arm)] = entry
    if len(entries) == 1 and "" in entries:
        out.update(entries[""])
    else:
        out["arms"] = entries
    out["trials_this_run"] = state_counts
    return out
