"""The multirun's parent MLflow run, created once in the sweeping process before any job starts.

Creating the sqlite database and the experiment here, before parallel jobs exist, also avoids
several processes initialising a fresh database at once (which breaks). Jobs find the parent
through a small file in the sweep dir: one per sweeping process (``mlflow_parent.<pid>.json``), because two
launches in the same second share Hydra's sweep dir, and each job must find its own sweep's parent — its
own process's (the basic launcher) or its parent process's (a joblib worker); ``PARENT_FILE`` is the latest
sweep's, for launchers whose jobs run elsewhere.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from mlflow.entities import Metric, RunTag
from mlflow.utils.mlflow_tags import MLFLOW_RUN_NOTE
from omegaconf import DictConfig

from bn_study.errors import StoreError
from bn_study.util.disk import disk_problem
from bn_study.tracking.naming import fit_run_name
from bn_study.tracking.claims import Heartbeat, Ledger
from bn_study.tracking.owner import OWNER_TAG, close_orphans, kill_run, this_owner
from bn_study.tracking.provenance import git_state
from bn_study.tracking.resume import reused_tag
from bn_study.util.atomic import write_atomic
from bn_study.util.redact import mask_userinfo
from bn_study.tracking.store import connect, ensure_experiment, resolve_tracking_uri

log = logging.getLogger(__name__)

PARENT_FILE = "mlflow_parent.json"  # in the multirun's sweep dir: how jobs find their parent run


def _own_file(sweep_dir: str | Path, pid: int) -> Path:
    return Path(sweep_dir) / f"mlflow_parent.{pid}.json"


def read_parent_file(sweep_dir: str | Path) -> dict[str, Any] | None:
    for path in (_own_file(sweep_dir, os.getpid()), _own_file(sweep_dir, os.getppid()), Path(sweep_dir) / PARENT_FILE):
        if path.exists():
            return json.loads(path.read_text())
    return None


def write_parent_file(sweep_dir: str | Path, payload: Mapping[str, Any]) -> None:
    data = json.dumps(dict(payload)).encode()
    write_atomic(_own_file(sweep_dir, os.getpid()), data)
    write_atomic(Path(sweep_dir) / PARENT_FILE, data)


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
        tracking = config.tracking
        self.ledger = Ledger.open(self.client, self.uri, float(tracking.stale_after_seconds))
        self._alive = contextlib.ExitStack()  # the heartbeat, while this parent is RUNNING
        self._alive.enter_context(Heartbeat.held(self.ledger, float(tracking.heartbeat_seconds)))
        self.experiment_id = experiment_id
        try:
            self._close_orphaned_parents()
            run = self.client.create_run(experiment_id, run_name=mask_userinfo(description),
                                         tags={k: mask_userinfo(str(v)) for k, v in all_tags.items()})
        except Exception as err:
            self._alive.close()
            if disk_problem(err) is None:
                raise
            raise StoreError(f"the tracking store {mask_userinfo(self.uri)} cannot be written: {disk_problem(err)}; "
                             "no job was started") from None
        self.run_id = run.info.run_id
        self.name = run.info.run_name
        # Masked: the file lies in the sweep dir for anyone to read; a job whose own URI masks to this one
        # uses its own (bn_study.tracking.members), so the password never needs to be on disk.
        self._payload = {"run_id": self.run_id, "tracking_uri": mask_userinfo(self.uri), "experiment_id": experiment_id,
                         "owner": all_tags[OWNER_TAG], "on_held": "wait"}
        write_parent_file(self.sweep_dir, self._payload)
        log.info("MLflow parent run %s (%s) in %s", self.run_id, description, mask_userinfo(self.uri))

    def _close_orphaned_parents(self) -> None:
        """Sweeps of this experiment killed before (kill -9, a lost machine) must not stay RUNNING for ever;
        looked at again when this sweep ends, by when another host's silence may have become long enough."""
        close_orphans(self.client, self.client.search_runs(
            [self.experiment_id], filter_string="tags.role = 'multirun parent' and attributes.status = 'RUNNING'",
            max_results=1000), "sweep killed; closed by a later launch", gone=self.ledger.gone)

    def on_held(self, mode: str) -> None:
        """What this sweep's jobs do with a member another live launch trains: "defer" (return at once, the
        sweeper comes back to them) or "wait" (until that launch lets go of it)."""
        self._payload["on_held"] = mode
        write_parent_file(self.sweep_dir, self._payload)

    def children(self) -> list:
        return self.client.search_runs(
            [self.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{self.run_id}'", max_results=50000)

    def set_tags(self, tags: Mapping[str, str]) -> None:
        try:
            self.client.log_batch(self.run_id, tags=[RunTag(k, mask_userinfo(str(v))) for k, v in tags.items()])
        except Exception as err:  # a full store: the summary was printed, closing the run matters more
            if disk_problem(err) is None:
                raise
            log.warning("the tracking store %s did not take the multirun's tags (%s)", mask_userinfo(self.uri), disk_problem(err))

    def result_runs(self) -> list:
        """This sweep's results: its children, and the runs of earlier launches it skipped or continued."""
        own = self.children()
        known = {r.info.run_id for r in own}
        reused = self.client.search_runs([self.experiment_id], filter_string=f"tags.`{reused_tag(self.run_id)}` = 'true'",
                                         max_results=50000)
        return own + [r for r in reused if r.info.run_id not in known]

    def links_note(self, linked: int, jobs: int) -> str:
        """Where the runs of this sweep that another launch trained are: they stay under the parent that made
        them and are linked here by a tag ("" when there are none)."""
        if not linked:
            return ""
        return (f"{linked} of {jobs} jobs of this sweep were trained by an earlier or another launch (skipped here, "
                f"or continued from its checkpoint): their runs stay under the parent that started them and carry "
                f"the tag `{reused_tag(self.run_id)}` — in the runs table, search "
                f"tags.`{reused_tag(self.run_id)}` = 'true'.")

    def log_summary(self, note: str, table: Mapping[str, list], metrics: Mapping[str, float], artifact: str) -> None:
        """The sweep's result where the UI shows it first: the description, a table artifact, metrics."""
        try:
            self.client.log_table(self.run_id, dict(table), artifact)
            now = int(time.time() * 1000)
            items = [Metric(k, float(v), now, 0) for k, v in metrics.items()]
            for i in range(0, len(items), 1000) or [0]:
                self.client.log_batch(self.run_id, metrics=items[i:i + 1000],
                                      tags=[] if i else [RunTag(MLFLOW_RUN_NOTE, mask_userinfo(note))])
        except Exception as err:  # a full store: the summary was printed, closing the run matters more
            if disk_problem(err) is None:
                raise
            log.warning("the tracking store %s did not take the multirun's summary (%s)", mask_userinfo(self.uri),
                        disk_problem(err))

    def finish(self, failed: bool) -> None:
        try:
            self.client.set_terminated(self.run_id, "FAILED" if failed else "FINISHED")
            self._close_orphaned_parents()
        except Exception as err:
            if disk_problem(err) is None:
                raise
            raise StoreError(f"the multirun's parent run {self.run_id} could not be closed in {mask_userinfo(self.uri)} "
                             f"({disk_problem(err)}): the store still shows it RUNNING; the next launch "
                             "closes it") from None
        finally:
            self._alive.close()

    def interrupted(self) -> None:
        """Ctrl-C: KILLED, with the reason (the same command resumes the sweep)."""
        kill_run(self.client, self.run_id, "interrupted (Ctrl-C)", "interrupted")
        self._alive.close()


def sweep_description(overrides: Sequence[str]) -> str:
    return fit_run_name("multirun " + " ".join(overrides)) if overrides else "multirun"
