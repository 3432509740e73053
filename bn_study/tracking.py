"""MLflow: where runs go, and one run per trained member with its params, metrics, tags and artifacts.

The store is ``sqlite:///<launch dir>/mlflow.db`` with artifacts under ``<launch dir>/mlruns`` unless
``tracking.uri`` or ``$MLFLOW_TRACKING_URI`` says otherwise, so a plain ``mlflow ui`` in the directory
the user launched from shows every run. Everything goes through ``MlflowClient`` with explicit run
ids (no fluent "active run"): several jobs run in one process under Hydra's basic launcher.
"""

from __future__ import annotations

import functools
import getpass
import json
import logging
import os
import platform
import subprocess
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunTag
from mlflow.exceptions import MlflowException
from mlflow.utils.mlflow_tags import (
    MLFLOW_GIT_COMMIT,
    MLFLOW_PARENT_RUN_ID,
    MLFLOW_SOURCE_NAME,
    MLFLOW_SOURCE_TYPE,
    MLFLOW_USER,
)

from bn_study.errors import UserError

log = logging.getLogger(__name__)

PROJECT_DIR = Path(__file__).resolve().parent.parent
PARENT_FILE = "mlflow_parent.json"  # in the multirun's sweep dir: how jobs find their parent run
_BATCH = 1000  # MLflow accepts at most 1000 metrics, 100 params, 100 tags per log_batch


def resolve_tracking_uri(configured: str | None, launch_dir: str | Path) -> str:
    """``tracking.uri`` if set, else ``$MLFLOW_TRACKING_URI``, else the sqlite file in the launch dir."""
    if configured:
        return str(configured)
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"]
    return f"sqlite:///{Path(launch_dir).resolve() / 'mlflow.db'}"


def _local_sqlite_file(uri: str) -> Path | None:
    return Path(uri.removeprefix("sqlite:///")) if uri.startswith("sqlite:///") else None


def connect(uri: str) -> MlflowClient:
    """A client for ``uri``; a local sqlite file that cannot be written is a user error, said plainly."""
    db = _local_sqlite_file(uri)
    if db is not None:
        probe = db if db.exists() else db.parent
        if not probe.exists() or not os.access(probe, os.W_OK):
            raise UserError(f"tracking.uri={uri!r} cannot be written ({probe} is not writable); "
                            "launch from a writable directory or set tracking.uri.")
    return MlflowClient(uri)


def ensure_experiment(client: MlflowClient, name: str, uri: str) -> str:
    """The experiment's id, creating it (artifacts under ``<db dir>/mlruns``) if it does not exist."""
    found = client.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    db = _local_sqlite_file(uri)
    location = (db.parent / "mlruns" / _slug(name)).as_uri() if db is not None else None
    try:
        return client.create_experiment(name, artifact_location=location)
    except MlflowException:  # created meanwhile by another process
        found = client.get_experiment_by_name(name)
        if found is None:
            raise
        return found.experiment_id


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name) or "experiment"


@functools.lru_cache(maxsize=1)
def git_state() -> tuple[str, bool]:
    """(commit, dirty) of the project checkout; ("unknown", False) outside git."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=PROJECT_DIR, capture_output=True,
                                text=True, timeout=10, check=True).stdout.strip()
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=PROJECT_DIR,
                                capture_output=True, text=True, timeout=10, check=True).stdout
        return commit, bool(status.strip())
    except (OSError, subprocess.SubprocessError):
        return "unknown", False


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"cpu: {cpu} ({torch.get_num_threads()} threads)"


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


def _override_key(override: str) -> str:
    return override.split("=", 1)[0].lstrip("+~")


def run_name(overrides: Iterable[str], seed: int) -> str:
    """Reads like the command line: ``norm=bn1 act=sigmoid seed=0``."""
    kept = [o for o in overrides if _override_key(o) not in ("seed", "seeds")]
    return " ".join([*kept, f"seed={seed}"])


def condition_of(overrides: Iterable[str], base_overrides: Iterable[str] = ()) -> str:
    """What sets this job apart within its sweep: its overrides minus those every job shares, minus seeds.

    Runs of one condition differ only in their seed; the report groups them by this tag.
    """
    base = set(base_overrides)
    kept = [o for o in overrides if o not in base and _override_key(o) not in ("seed", "seeds")]
    return " ".join(kept) or "defaults"


@dataclass(frozen=True)
class RunContext:
    """What every run of a job shares: where it goes and the tags that say where it came from."""

    client: MlflowClient
    experiment_id: str
    parent_run_id: str | None
    overrides: tuple[str, ...]
    tags: Mapping[str, str]


def open_context(uri: str, experiment: str, *, device: torch.device, overrides: Sequence[str],
                 multirun_dir: str | None, parent_run_id: str | None, base_overrides: Sequence[str] = (),
                 extra_tags: Mapping[str, str] | None = None) -> RunContext:
    client = connect(uri)
    experiment_id = ensure_experiment(client, experiment, uri)
    commit, dirty = git_state()
    tags = {
        MLFLOW_SOURCE_NAME: "bn_study",
        MLFLOW_SOURCE_TYPE: "LOCAL",
        MLFLOW_USER: _user(),
        MLFLOW_GIT_COMMIT: commit,
        "git_commit": commit,
        "git_dirty": str(dirty).lower(),
        "device": device_name(device),
        "torch_version": torch.__version__,
        "overrides": " ".join(overrides),
        "condition": condition_of(overrides, base_overrides),
    }
    if multirun_dir:
        tags["multirun_dir"] = multirun_dir
    tags.update(extra_tags or {})
    return RunContext(client, experiment_id, parent_run_id, tuple(overrides), tags)


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


class MemberRun:
    """One MLflow run: what a separately launched run with this member's seed would have logged."""

    def __init__(self, ctx: RunContext, *, seed: int, params: Mapping[str, str],
                 tags: Mapping[str, str], config_yaml: str) -> None:
        self.client = ctx.client
        all_tags = {**ctx.tags, **tags, "seed": str(seed)}
        if ctx.parent_run_id:
            all_tags[MLFLOW_PARENT_RUN_ID] = ctx.parent_run_id
        self.name = run_name(ctx.overrides, seed)
        run = self.client.create_run(ctx.experiment_id, run_name=self.name, tags=all_tags)
        self.run_id = run.info.run_id
        items = [Param(k, v[:6000]) for k, v in sorted(params.items())]
        for i in range(0, len(items), 100):
            self.client.log_batch(self.run_id, params=items[i:i + 100])
        self.client.log_text(self.run_id, config_yaml, "config.yaml")

    def log_metrics(self, values: Mapping[str, float], step: int) -> None:
        now = int(time.time() * 1000)
        self._log([Metric(k, float(v), now, step) for k, v in values.items()])

    def log_series(self, key: str, points: Iterable[tuple[int, float]]) -> None:
        now = int(time.time() * 1000)
        self._log([Metric(key, float(v), now, step) for step, v in points])

    def _log(self, metrics: list[Metric]) -> None:
        for i in range(0, len(metrics), _BATCH):
            self.client.log_batch(self.run_id, metrics=metrics[i:i + _BATCH])

    def set_tags(self, tags: Mapping[str, str]) -> None:
        self.client.log_batch(self.run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()])

    def log_figure(self, figure: Any, name: str) -> None:
        self.client.log_figure(self.run_id, figure, name)

    def log_text(self, text: str, name: str) -> None:
        self.client.log_text(self.run_id, text, name)

    def finish(self, failure: str | None, *, status: str | None = None,
               tags: Mapping[str, str] | None = None) -> None:
        """FINISHED without a failure, else FAILED (or ``status``, e.g. KILLED) with the reason as a tag."""
        extra = dict(tags or {})
        if failure is not None:
            extra["failure_reason"] = failure
        if extra:
            self.set_tags(extra)
        self.client.set_terminated(self.run_id, status or ("FAILED" if failure else "FINISHED"))


def read_parent_file(sweep_dir: str | Path) -> dict[str, Any] | None:
    path = Path(sweep_dir) / PARENT_FILE
    return json.loads(path.read_text()) if path.exists() else None


def write_parent_file(sweep_dir: str | Path, payload: Mapping[str, Any]) -> None:
    path = Path(sweep_dir)
    path.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=path, delete=False, suffix=".tmp") as tmp:
        json.dump(dict(payload), tmp)
    os.replace(tmp.name, path / PARENT_FILE)
