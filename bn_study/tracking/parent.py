"""The multirun's parent MLflow run, created once in the sweeping process before any job starts.

Creating the sqlite database and the experiment here, before parallel jobs exist, also avoids
several processes initialising a fresh database at once (which breaks). Jobs find the parent
through a small file in the sweep dir (``PARENT_FILE``).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from mlflow.entities import RunTag
from omegaconf import DictConfig

from bn_study.tracking.naming import fit_run_name
from bn_study.tracking.owner import OWNER_TAG, close_orphans, kill_run, this_owner
from bn_study.tracking.provenance import git_state
from bn_study.util.atomic import write_atomic
from bn_study.util.redact import mask_userinfo
from bn_study.tracking.store import connect, ensure_experiment, resolve_tracking_uri

log = logging.getLogger(__name__)

PARENT_FILE = "mlflow_parent.json"  # in the multirun's sweep dir: how jobs find their parent run


def read_parent_file(sweep_dir: str | Path) -> dict[str, Any] | None:
    path = Path(sweep_dir) / PARENT_FILE
    return json.loads(path.read_text()) if path.exists() else None


def write_parent_file(sweep_dir: str | Path, payload: Mapping[str, Any]) -> None:
    write_atomic(Path(sweep_dir) / PARENT_FILE, json.dumps(dict(payload)).encode())


class ParentRun:
    def __init__(self, config: DictConfig, description: str, tags: Mapping[str, str] | None = None) -> None:
        launch_dir = Path(config.hydra.runtime.cwd)
        self.sweep_dir = Path(str(config.hydra.sweep.dir))
        self.uri = resolve_tracking_uri(config.tracking.uri, launch_dir)
        self.client = connect(self.uri)
        experiment_id = ensure_experiment(self.client, config.tracking.experiment, self.uri)
        commit, dirty = git_state(launch_dir.resolve())
        all_tags = {
            "multirun_dir": str(self.sweep_dir),
            "overrides": " ".join(config.hydra.overrides.task),
            "git_commit": commit,
            "git_dirty": str(dirty).lower(),
            "role": "multirun parent",
            OWNER_TAG: this_owner(),
            **(tags or {}),
        }
        # sweeps of this experiment killed before (kill -9, a lost machine) must not stay RUNNING for ever
        close_orphans(self.client, self.client.search_runs(
            [experiment_id], filter_string="tags.role = 'multirun parent' and attributes.status = 'RUNNING'",
            max_results=1000), "sweep killed; closed by a later launch")
        run = self.client.create_run(experiment_id, run_name=mask_userinfo(description),
                                     tags={k: mask_userinfo(str(v)) for k, v in all_tags.items()})
        self.run_id = run.info.run_id
        self.experiment_id = experiment_id
        # Masked: the file lies in the sweep dir for anyone to read; a job whose own URI masks to this one
        # uses its own (bn_study.tracking.members), so the password never needs to be on disk.
        write_parent_file(self.sweep_dir, {"run_id": self.run_id, "tracking_uri": mask_userinfo(self.uri),
                                           "experiment_id": experiment_id,
                                           "base_overrides": [mask_userinfo(o) for o in config.hydra.overrides.task]})
        log.info("MLflow parent run %s (%s) in %s", self.run_id, description, mask_userinfo(self.uri))

    def children(self) -> list:
        return self.client.search_runs(
            [self.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{self.run_id}'", max_results=50000)

    def set_tags(self, tags: Mapping[str, str]) -> None:
        self.client.log_batch(self.run_id, tags=[RunTag(k, mask_userinfo(str(v))) for k, v in tags.items()])

    def finish(self, failed: bool) -> None:
        self.client.set_terminated(self.run_id, "FAILED" if failed else "FINISHED")

    def interrupted(self) -> None:
        """Ctrl-C: KILLED, with the reason (the same command resumes the sweep)."""
        kill_run(self.client, self.run_id, "interrupted (Ctrl-C)", "interrupted")


def sweep_description(overrides: Sequence[str]) -> str:
    return fit_run_name("multirun " + " ".join(overrides)) if overrides else "multirun"
