"""How runs are named and grouped: params from the config, names and conditions from the overrides."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID



def flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """``{"a": {"b": 1}} → {"a.b": "1"}``: the resolved config as MLflow params."""
    flat: dict[str, str] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = json.dumps(value) if isinstance(value, (list, tuple)) else str(value)
    return flat


# MLflow's SQL stores hold a run name in VARCHAR(250): PostgreSQL refuses a longer one (sqlite does not check).
MAX_RUN_NAME = 250


def fit_run_name(name: str, limit: int = MAX_RUN_NAME) -> str:
    """``name`` cut to what every MLflow store accepts, the cut marked by an ellipsis."""
    return name if len(name) <= limit else name[:limit - 1] + "…"


def readable_value(value: str, digits: int = 4) -> str:
    """One value as people read it: a float with ``digits`` significant digits (``0.3595``); anything else as is.
    A float keeps a point (``1.0`` stays ``1.0``, not ``1``) so that it still reads as the float it was."""
    try:
        number = float(value) if any(c in value for c in ".e") else None
    except ValueError:
        number = None
    if number is None:
        return value
    shown = f"{number:.{digits}g}"
    return f"{shown}.0" if "." in value and not any(c in shown for c in ".e") else shown


def readable(condition: str, digits: int = 4) -> str:
    """A condition as people read it: each number with ``digits`` significant digits (``optimizer.lr=0.3595``)."""
    out = []
    for token in condition.split(" "):
        key, eq, value = token.partition("=")
        out.append(f"{key}={readable_value(value, digits)}" if eq else token)
    return " ".join(out)


# a run's name as the runs table shows it: the condition, cut well before the table's column is full
SHORT_RUN_NAME = 80


def run_name(condition: str, seed: int, tags: Mapping[str, str] | None = None) -> str:
    """``norm=bn1 act=relu seed=0``: the condition's readable form (cut with an ellipsis), then the seed; an
    Optuna trial's run starts with ``trial N``, a study's final run with ``final``."""
    stage = (tags or {}).get("stage")
    lead = {"tune": f"trial {(tags or {}).get('optuna_trial')} ", "final": "final "}.get(stage or "", "")
    return f"{lead}{fit_run_name(readable(condition), SHORT_RUN_NAME)} seed={seed}"


def run_description(tags: Mapping[str, str]) -> str:
    """What a run is, for its MLflow description: which sweep or study made it, its seed, its condition in full."""
    study = tags.get("optuna_study")
    what = {"tune": f"Optuna trial {tags.get('optuna_trial')} of the study “{study}” (tuned on the held-out split)",
            "final": f"The final run of the study “{study}”: its best trial ({tags.get('optuna_best_trial')})'s "
                     "settings once more, with the test set measured at the end"}.get(tags.get("stage", ""))
    if what is None:
        what = "One run of a multirun (its parent run holds the sweep's summary)" if MLFLOW_PARENT_RUN_ID in tags \
            else "A single run"
    return (f"{what}, seed {tags.get('seed')}.\n\nCondition (the settings that differ from the defaults; runs of "
            f"one condition differ only in their seed): `{tags.get('condition', 'defaults')}`\n\n"
            f"As launched: `{tags.get('overrides') or '(no overrides)'}`")
