"""Where runs go: the tracking URI, a usable store before anything trains, the experiment.

The store is ``sqlite:///<launch dir>/mlflow.db`` with artifacts under ``<launch dir>/mlruns`` unless
``tracking.uri`` or ``$MLFLOW_TRACKING_URI`` says otherwise, so a plain ``mlflow ui`` in the directory
the user launched from shows every run.
"""

from __future__ import annotations

import os
from pathlib import Path

from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from bn_study.errors import UserError
from bn_study.util.names import slug


def resolve_tracking_uri(configured: str | None, launch_dir: str | Path) -> str:
    """``tracking.uri`` if set, else ``$MLFLOW_TRACKING_URI``, else the sqlite file in the launch dir."""
    if configured:
        return str(configured)
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"]
    return f"sqlite:///{Path(launch_dir).resolve() / 'mlflow.db'}"


def local_sqlite_file(uri: str) -> Path | None:
    return Path(uri.removeprefix("sqlite:///")) if uri.startswith("sqlite:///") else None


def connect(uri: str) -> MlflowClient:
    """A client for ``uri``; a local sqlite file that cannot be written is a user error, said plainly."""
    db = local_sqlite_file(uri)
    if db is not None:
        probe = db
        while not probe.exists() and probe != probe.parent:
            probe = probe.parent
        usable = probe.is_file() if probe == db else probe.is_dir()
        if not usable or not os.access(probe, os.W_OK):
            raise UserError(f"tracking.uri={uri!r} cannot be written ({probe} is not a writable "
                            f"{'file' if probe == db else 'directory'}); launch from a writable directory or set "
                            "tracking.uri.")
    return MlflowClient(uri)


def check_reachable(uri: str) -> None:
    """Before any training: the store can be written (sqlite) or the server answers (http)."""
    if uri.startswith(("http://", "https://")):
        import urllib.request

        try:
            with urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=5) as response:
                if response.status == 200:
                    return
        except OSError as err:
            raise UserError(f"tracking.uri={uri!r}: no MLflow server answers there ({err}); start one "
                            "(python -m bn_study.server start) or point tracking.uri elsewhere.") from None
        raise UserError(f"tracking.uri={uri!r}: the server answered /health with an error; is it an MLflow server?")
    connect(uri)


def ensure_experiment(client: MlflowClient, name: str, uri: str) -> str:
    """The experiment's id, creating it (artifacts under ``<db dir>/mlruns``) if it does not exist."""
    found = client.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    db = local_sqlite_file(uri)
    location = (db.parent / "mlruns" / slug(name)).as_uri() if db is not None else None
    try:
        return client.create_experiment(name, artifact_location=location)
    except MlflowException:  # created meanwhile by another process
        found = client.get_experiment_by_name(name)
        if found is None:
            raise
        return found.experiment_id


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name) or "experiment"


