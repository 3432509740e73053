"""How runs are named and grouped: params from the config, names and conditions from the overrides."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from bn_study.util.overrides import override_key


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


def run_name(overrides: Iterable[str], seed: int) -> str:
    """Reads like the command line: ``norm=bn1 act=sigmoid seed=0`` (a long one cut, the seed kept)."""
    kept = " ".join(o for o in overrides if override_key(o) not in ("seed", "seeds"))
    seed_part = f"seed={seed}"
    return f"{fit_run_name(kept, MAX_RUN_NAME - len(seed_part) - 1)} {seed_part}" if kept else seed_part


def shared_keys(command_line: Iterable[str]) -> set[str]:
    """Keys the command line fixes for every job of a sweep (``epochs=3``, not ``norm=none,bn1``)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed = OverridesParser.create().parse_overrides(list(command_line))
    return {o.key_or_group for o in parsed if not o.is_sweep_override()}


def condition_of(overrides: Iterable[str], base_overrides: Iterable[str] = ()) -> str:
    """What sets this job apart within its sweep: its overrides minus those every job shares, minus seeds.

    Runs of one condition differ only in their seed; the report groups them by this tag.
    """
    skip = shared_keys(base_overrides) | {"seed", "seeds"}
    kept = [o for o in overrides if override_key(o) not in skip]
    return " ".join(kept) or "defaults"


