"""Checks that run in the launching process before Hydra creates any output: a bad config or missing
data stops everything with one sentence and exit code 2, leaving no run dir, sweep dir or MLflow run."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from bn_study.data import ensure_raw
from bn_study.errors import UserError, exit_for_user
from bn_study.job import resolve_path
from bn_study.tracking.store import check_reachable, resolve_tracking_uri
from bn_study.config.rules import validate_config


def preflight(configs: Sequence[DictConfig], launch_dir: str | Path, labels: Sequence[str] | None = None) -> None:
    """Validate every job's config, then acquire each dataset they need, once, in this process
    (so parallel jobs only ever read the files)."""
    for i, cfg in enumerate(configs):
        try:
            validate_config(cfg)
        except UserError as err:
            raise UserError(f"{labels[i]}: {err}" if labels else str(err)) from None
    for uri in sorted({resolve_tracking_uri(c.tracking.uri, Path(launch_dir)) for c in configs}):
        check_reachable(uri)
    wanted = {(c.data.name, str(resolve_path(c.data.root, Path(launch_dir))), tuple(c.data.sources)) for c in configs}
    for name, root, sources in sorted(wanted):
        ensure_raw(name, root, sources)


class PreflightBeforeRun(Callback):
    """Single runs: Hydra calls this before it creates the run's output directory."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        try:
            preflight([config], config.hydra.runtime.cwd)
        except UserError as err:
            exit_for_user(err)  # Hydra turns a callback's exceptions into warnings; an exit passes
