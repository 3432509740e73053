"""One MLflow run per trained member with its params, metrics, tags and artifacts.

Everything goes through ``MlflowClient`` with explicit run ids (no fluent "active run"): several jobs
run in one process under Hydra's basic launcher.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunTag
from mlflow.utils.mlflow_tags import (
    MLFLOW_GIT_COMMIT,
    MLFLOW_PARENT_RUN_ID,
    MLFLOW_SOURCE_NAME,
    MLFLOW_SOURCE_TYPE,
    MLFLOW_RUN_NOTE,
    MLFLOW_USER,
)

from bn_study.errors import StoreError, TrackingUnavailable
from bn_study.util.disk import disk_problem
from bn_study.tracking.condition import DEFAULTS
from bn_study.tracking.naming import run_description, run_name
from bn_study.tracking.owner import OWNER_TAG, this_owner
from bn_study.tracking.provenance import device_name, git_state, user_name
from bn_study.tracking.store import connect, ensure_experiment
from bn_study.util.atomic import write_atomic
from bn_study.util.redact import mask_userinfo
from bn_study.util.retry import retry

log = logging.getLogger(__name__)

_BATCH = 1000  # MLflow accepts at most 1000 metrics, 100 params, 100 tags per log_batch


@dataclass(frozen=True)
class RunContext:
    """What every run of a job shares: where it goes and the tags that say where it came from."""

    client: MlflowClient
    uri: str
    experiment_id: str
    parent_run_id: str | None
    overrides: tuple[str, ...]
    tags: Mapping[str, str]
    condition: str = DEFAULTS


def open_context(uri: str, experiment: str, *, launch_dir: Path, device: torch.device, overrides: Sequence[str],
                 multirun_dir: str | None, parent_run_id: str | None, condition: str = DEFAULTS,
                 extra_tags: Mapping[str, str] | None = None) -> RunContext:
    if uri.startswith(("http://", "https://")):
        # MLflow's own retries would block a training job for minutes per call while a server is down;
        # fail each call fast instead and let MemberRun keep the values and retry them later.
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "20")
    client = connect(uri)
    experiment_id = ensure_experiment(client, experiment, uri)
    commit, dirty = git_state(Path(launch_dir).resolve())
    tags = {
        MLFLOW_SOURCE_NAME: "bn_study",
        MLFLOW_SOURCE_TYPE: "LOCAL",
        MLFLOW_USER: user_name(),
        MLFLOW_GIT_COMMIT: commit,
        "git_commit": commit,
        "git_dirty": str(dirty).lower(),
        "device": device_name(device),
        "torch_version": torch.__version__,
        "overrides": " ".join(overrides),
        "condition": condition,
    }
    if multirun_dir:
        tags["multirun_dir"] = multirun_dir
    tags[OWNER_TAG] = this_owner()
    tags.update(extra_tags or {})
    return RunContext(client, uri, experiment_id, parent_run_id, tuple(overrides), tags, condition)


_DISK_ERRORS = (errno.ENOSPC, errno.EROFS, errno.EACCES, errno.EDQUOT)


def _retryable(err: Exception) -> bool:
    """A store that is down or busy is worth retrying; a request it refuses, or a full disk, is not."""
    if isinstance(err, OSError) and err.errno in _DISK_ERRORS or disk_problem(err):
        return False
    code = getattr(err, "error_code", None)
    return code not in ("INVALID_PARAMETER_VALUE", "BAD_REQUEST", "RESOURCE_DOES_NOT_EXIST")


class MemberRun:
    """One MLflow run: what a separately launched run with this member's seed would have logged.

    Metrics go out in batches and are kept in memory while the store cannot take them (a tracking
    server restarting, a sqlite file busy under parallel jobs); every later call retries them, and
    ``finish`` retries with backoff for ``retry_seconds`` before it gives up and saves what is left.
    """

    def __init__(self, client: MlflowClient, run_id: str, name: str, retry_seconds: float = 60.0) -> None:
        self.client, self.run_id, self.name = client, run_id, name
        self.retry_seconds = retry_seconds
        self._pending: list[Metric] = []
        self._warned = False

    @classmethod
    def create(cls, ctx: RunContext, *, seed: int, params: Mapping[str, str], tags: Mapping[str, str],
               config_yaml: str, retry_seconds: float = 60.0) -> MemberRun:
        # tracking.uri=http://user:password@… is an override, a param and a line of config.yaml: none keeps it
        all_tags = {k: mask_userinfo(v) for k, v in {**ctx.tags, **tags, "seed": str(seed)}.items()}
        if ctx.parent_run_id:
            all_tags[MLFLOW_PARENT_RUN_ID] = ctx.parent_run_id
        all_tags[MLFLOW_RUN_NOTE] = run_description(all_tags)
        name = mask_userinfo(run_name(ctx.condition, seed, all_tags))
        try:
            run = ctx.client.create_run(ctx.experiment_id, run_name=name, tags=all_tags)
        except Exception as err:
            if not disk_problem(err):
                raise
            raise StoreError(f"cannot create run {name} in the tracking store {mask_userinfo(ctx.client.tracking_uri)}: "
                             f"{disk_problem(err)}; no run of it exists") from None
        self = cls(ctx.client, run.info.run_id, name, retry_seconds)
        try:
            items = [Param(k, mask_userinfo(v)[:6000]) for k, v in sorted(params.items())]
            for i in range(0, len(items), 100):
                self._write("its params", self.client.log_batch, self.run_id, params=items[i:i + 100])
            self.log_text(config_yaml, "config.yaml")
        except StoreError as err:  # e.g. the artifact disk is full: the run must not stay RUNNING
            raise StoreError(f"{err}; {self.fail(str(err))}") from None
        return self

    @classmethod
    def attach(cls, client: MlflowClient, run_id: str, *, retry_seconds: float = 60.0) -> MemberRun:
        """Continue an interrupted run: same id, same history, RUNNING again."""
        run = client.get_run(run_id)
        self = cls(client, run_id, run.info.run_name, retry_seconds)
        self._write("its status", client.update_run, run_id, status="RUNNING")
        self._write("its tags", client.set_tag, run_id, "resumed", "true")
        return self

    def _write(self, what: str, call: Any, *args: Any, **kwargs: Any) -> Any:
        """``call`` on the store; a full or read-only disk under it becomes a StoreError naming it and why."""
        try:
            return call(*args, **kwargs)
        except Exception as err:
            if not disk_problem(err):
                raise
            raise StoreError(f"the tracking store {mask_userinfo(self.client.tracking_uri)} cannot take {what} of run "
                             f"{self.run_id}: {disk_problem(err)}") from None

    def logged_steps(self, key: str) -> set[int]:
        """Steps of ``key`` the store already has (a resumed run must not log them twice)."""
        return {m.step for m in self.client.get_metric_history(self.run_id, key)}

    def log_metrics(self, values: Mapping[str, float], step: int) -> None:
        now = int(time.time() * 1000)
        self._log([Metric(k, float(v), now, step) for k, v in values.items()])

    def log_series(self, key: str, points: Iterable[tuple[int, float]]) -> None:
        now = int(time.time() * 1000)
        self._log([Metric(key, float(v), now, step) for step, v in points])

    def _log(self, metrics: list[Metric]) -> None:
        self._pending.extend(metrics)
        self.flush()

    def flush(self, deadline: float | None = None) -> bool:
        """Send what is pending; with a deadline, retry with backoff until it passes. True when empty."""
        while self._pending:
            try:  # a full disk makes no room by waiting: the job ends (StoreError), the values are kept
                self._write("the metrics", retry,
                            lambda: self.client.log_batch(self.run_id, metrics=self._pending[:_BATCH]),
                            retryable=_retryable, deadline=deadline)
            except StoreError:
                raise
            except Exception as err:
                if not _retryable(err):
                    raise
                if not self._warned:
                    log.warning("tracking store unreachable, %d metric values kept to retry: %s",
                                len(self._pending), str(err).splitlines()[0])
                    self._warned = True
                return False
            del self._pending[:_BATCH]
        return True

    def _retrying(self, call: Any, *args: Any) -> None:
        retry(lambda: call(*args), retryable=_retryable, deadline=time.monotonic() + self.retry_seconds)

    def set_tags(self, tags: Mapping[str, str]) -> None:
        self._write("its tags", self._retrying,
                    lambda: self.client.log_batch(self.run_id, tags=[RunTag(k, mask_userinfo(str(v)))
                                                                    for k, v in tags.items()]))

    def log_figure(self, figure: Any, name: str) -> None:
        self._artifact(self.client.log_figure, figure, name)

    def log_text(self, text: str, name: str) -> None:
        self._artifact(self.client.log_text, mask_userinfo(text), name)

    def _artifact(self, call: Any, payload: Any, name: str) -> None:
        try:
            self._retrying(call, self.run_id, payload, name)
        except OSError as err:
            if err.errno not in _DISK_ERRORS:
                raise
            where = self.client.get_run(self.run_id).info.artifact_uri
            raise StoreError(f"cannot write artifact {name} of run {self.run_id} to {where}: {err.strerror}") from err

    def finish(self, failure: str | None, *, status: str | None = None, outcome: str | None = None,
               tags: Mapping[str, str] | None = None) -> None:
        """FINISHED without a failure, else FAILED (or ``status``, e.g. KILLED) with the reason as a tag.

        ``outcome`` (finished, diverged, crashed, interrupted, pruned) is what resume reads later."""
        try:
            sent = self.flush(deadline=time.monotonic() + self.retry_seconds)
        except StoreError as err:  # the store's disk is full or read-only
            raise StoreError(f"{err}; {self.fail(str(err))}") from None
        if not sent:
            unsent = self._save_unsent()
            raise TrackingUnavailable(f"the tracking store did not take {len(self._pending)} metric values of run "
                                      f"{self.run_id} within {self.retry_seconds:.0f} s; they are saved in {unsent}")
        extra = {"outcome": outcome or ("finished" if failure is None else "diverged"), **(tags or {})}
        if failure is not None:
            extra["failure_reason"] = failure
        self.set_tags(extra)
        self._write("its status", self._retrying, self.client.set_terminated, self.run_id,
                    status or ("FAILED" if failure else "FINISHED"))

    def fail(self, reason: str) -> str:
        """After a full or read-only disk (``reason`` says which and where): the metrics still pending go to
        the store, else to a file where there is room; the run is closed FAILED with the reason where the
        store still takes that. Returns what became of the run, for the job's one line."""
        try:
            self.flush()
        except StoreError:  # the store is what is full: the values go to a file below
            pass
        kept = ""
        if self._pending:
            try:
                kept = f"; its {len(self._pending)} unsent metric values are saved in {self._save_unsent()}"
            except StoreError as err:
                kept = f"; {err}"
        try:
            self.set_tags({"outcome": "crashed", "failure_reason": reason})
            self._write("its status", self._retrying, self.client.set_terminated, self.run_id, "FAILED")
        except StoreError as err:
            return (f"run {self.run_id} could not be marked FAILED ({err}): the store still shows it RUNNING, "
                    f"not saved as failed, until a rerun closes it{kept}")
        return f"run {self.run_id} FAILED{kept}"

    def _save_unsent(self) -> str:
        """The pending values as ``unsent_metrics_<run>.json``: in the launch dir, else (a full or read-only
        disk there) in the first of $TMPDIR and ~/.cache/bn_study that takes the whole file. Returns where,
        and why not in the places before it."""
        rows = [{"key": m.key, "value": m.value, "timestamp": m.timestamp, "step": m.step} for m in self._pending]
        data = json.dumps({"run_id": self.run_id, "metrics": rows}).encode()
        tried = []
        for folder in (Path.cwd(), Path(tempfile.gettempdir()), Path.home() / ".cache" / "bn_study"):
            path = folder / f"unsent_metrics_{self.run_id}.json"
            try:
                write_atomic(path, data)
            except OSError as err:
                tried.append(f"{folder}: {err.strerror or err}")
                continue
            return f"{path} (not in {'; '.join(tried)})" if tried else str(path)
        raise StoreError(f"{len(self._pending)} metric values of run {self.run_id} that the tracking store did not "
                         f"take could not be saved anywhere ({'; '.join(tried)}); they are lost")


