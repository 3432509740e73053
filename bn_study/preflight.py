"""Checks that run in the launching process before Hydra creates any output: a bad config or missing
data stops everything with one sentence and exit code 2, leaving no run dir, sweep dir or MLflow run.

The order is the cheap and silent first: the launcher's settings, every job's config (bn_study.config.rules),
then each tracking store (a server must answer; a local sqlite file is only looked at, never created), and
last the data, fetched once here if missing, so that parallel jobs only ever read the files.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from bn_study.config.launcher import validate_launcher
from bn_study.config.rules import check_tracking_uri, validate_config
from bn_study.data import ensure_raw
from bn_study.errors import UserError, exit_for_user
from bn_study.util.paths import resolve_path
from bn_study.tracking.store import check_reachable, resolve_tracking_uri


def preflight(configs: Sequence[DictConfig], launch_dir: str | Path, labels: Sequence[str] | None = None, *,
              launcher: Mapping[str, Any] | None = None) -> None:
    """Validate the launcher (a multirun's) and every job's config, then the tracking stores they use, then
    acquire each dataset they need, once, in this process."""
    launch = Path(launch_dir)
    validate_launcher(launcher)
    for i, cfg in enumerate(configs):
        try:
            validate_config(cfg, launch_dir=launch)
        except UserError as err:
            raise UserError(f"{labels[i]}: {err}" if labels else str(err)) from None
    uris = {}
    for cfg in configs:
        uri = resolve_tracking_uri(cfg.tracking.uri, launch)
        if not cfg.tracking.uri and os.environ.get("MLFLOW_TRACKING_URI"):
            uris.setdefault(uri, "MLFLOW_TRACKING_URI")
        else:
            uris.setdefault(uri, "tracking.uri")
    for uri, key in sorted(uris.items()):
        check_tracking_uri(uri, launch, key=key)
        check_reachable(uri)
    wanted = {(c.data.name, str(resolve_path(c.data.root, launch)), tuple(c.data.sources), bool(c.data.verify))
              for c in configs}
    for name, root, sources, verify in sorted(wanted):
        ensure_raw(name, root, sources, verify=verify)


class PreflightBeforeRun(Callback):
    """Single runs: Hydra calls this before it creates the run's output directory."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        try:
            preflight([config], config.hydra.runtime.cwd)
        except UserError as err:
            exit_for_user(err)  # Hydra turns a callback's exceptions into warnings; an exit passes
