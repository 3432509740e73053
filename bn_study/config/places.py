"""Where a run writes, checked for ``bn_study.config.rules`` without creating anything: a directory
(``checkpoint_dir``), a tracking URI MLflow can use (a local sqlite file this user can create or write),
an Optuna storage's file. A file is created only to learn whether one can be (root passes every permission
check; /proc or a read-only mount refuse anyway), and is gone at once, nameless (O_TMPFILE).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from bn_study.errors import UserError
from bn_study.util.redact import mask_userinfo

# MLflow's own tracking stores (mlflow.tracking._tracking_service.utils), by URI scheme
DATABASE_SCHEMES = ("postgresql", "mysql", "mssql")
HOSTED_SCHEMES = ("databricks", "databricks-uc", "uc")
URI_FORMS = ("sqlite:///<path>.db, http(s)://<host>[:<port>], postgresql://…, mysql://…, mssql://… or databricks "
             "(null: sqlite:///<launch dir>/mlflow.db)")


# --- paths and URIs --------------------------------------------------------------------------------

def _nearest_existing(path: Path) -> Path:
    probe = path
    while not os.path.lexists(probe) and probe != probe.parent:
        probe = probe.parent
    return probe


def check_directory_writable(key: str, value: Any, launch_dir: str | Path, why: str) -> Path:
    """``value`` is, or can be created as, a directory this user may write in (relative: to ``launch_dir``)."""
    path = Path(os.path.expanduser(str(value)))
    path = path if path.is_absolute() else Path(launch_dir) / path
    existing = _nearest_existing(path)
    if existing == path and not path.is_dir():
        raise UserError(f"{key}={str(value)!r} is not allowed: {path} is a file, not a directory ({why}).")
    if not existing.is_dir():
        raise UserError(f"{key}={str(value)!r} is not allowed: {existing} is a file, so {path} cannot be created ({why}).")
    if not _can_create_in(existing):
        raise UserError(f"{key}={str(value)!r} is not allowed: this user may not write in {existing} ({why}); "
                        "choose a writable directory.")
    return path


def _can_create_in(folder: Path) -> bool:
    """Whether a file can be created in ``folder``: permissions, and a real try (root passes every permission
    check, and /proc or a read-only mount refuse anyway); the file is gone again at once."""
    import tempfile

    if not os.access(folder, os.W_OK | os.X_OK):
        return False
    try:
        with tempfile.TemporaryFile(dir=folder, prefix=".bn_study-write-check-"):
            return True
    except OSError:
        return False


def sqlite_path(uri: str, launch_dir: str | Path) -> Path | None:
    """The database file of a ``sqlite:///`` URI (relative paths: from ``launch_dir``); None for other URIs."""
    if not uri.startswith("sqlite:///"):
        return None
    path = Path(uri.removeprefix("sqlite:///").split("?", 1)[0])
    return path if path.is_absolute() else Path(launch_dir) / path


def check_tracking_uri(uri: Any, launch_dir: str | Path, *, key: str = "tracking.uri", check_paths: bool = True) -> None:
    """A URI MLflow can keep runs in; for a local sqlite file, one this user can create or write."""
    if not isinstance(uri, str) or not uri.strip():
        raise UserError(f"{key}={mask_userinfo(uri)!r} is not allowed; give {URI_FORMS}.")
    scheme = urlsplit(uri).scheme.lower()
    base = scheme.split("+", 1)[0]
    if scheme == "sqlite":
        path = sqlite_path(uri, launch_dir)
        name = uri.removeprefix("sqlite:///").split("?", 1)[0]
        if path is None or not name or name == ":memory:":
            raise UserError(f"{key}={mask_userinfo(uri)!r} is not allowed; a SQLite store is a file: sqlite:///<path>.db "
                            "(relative to the launch directory) or sqlite:////<absolute path>.db.")
        if check_paths:
            _check_sqlite_file(key, uri, path)
    elif scheme in ("http", "https"):
        if not urlsplit(uri).hostname:
            raise UserError(f"{key}={mask_userinfo(uri)!r} is not allowed; an MLflow server's URI names its host: "
                            f"{scheme}://<host>[:<port>].")
    elif base in DATABASE_SCHEMES:
        if not urlsplit(uri).hostname:
            raise UserError(f"{key}={mask_userinfo(uri)!r} is not allowed; a database URI names its host: "
                            f"{scheme}://<user>@<host>[:<port>]/<database>.")
    elif scheme == "file":
        if os.environ.get("MLFLOW_ALLOW_FILE_STORE", "").lower() not in ("1", "true"):
            raise UserError(f"{key}={mask_userinfo(uri)!r} is not allowed: MLflow {_mlflow_major()}refuses its old file store; "
                            "use sqlite:///<path>.db (or set MLFLOW_ALLOW_FILE_STORE=true).")
    elif scheme in HOSTED_SCHEMES:
        pass
    else:
        raise UserError(f"{key}={mask_userinfo(uri)!r} is not a tracking URI MLflow can use; give {URI_FORMS}.")


def _mlflow_major() -> str:
    try:
        from importlib.metadata import version

        return f"{version('mlflow').split('.')[0]} "
    except Exception:  # noqa: BLE001 - only for the wording
        return ""


def _check_sqlite_file(key: str, uri: str, path: Path) -> None:
    """The file exists and can be written, or its directory exists and can be written (nothing is created)."""
    if path.exists():
        if not path.is_file():
            raise UserError(f"{key}={mask_userinfo(uri)!r} cannot be written: {path} is a directory, not a database file.")
        if not os.access(path, os.R_OK | os.W_OK) or not _can_create_in(path.parent):
            raise UserError(f"{key}={mask_userinfo(uri)!r} cannot be written ({path} or its directory is not writable); "
                            "launch from a writable directory or set tracking.uri.")
        return
    folder = path.parent
    if not folder.is_dir():
        existing = _nearest_existing(folder)
        what = "is a file, not a directory" if existing == folder else "does not exist"
        raise UserError(f"{key}={mask_userinfo(uri)!r} cannot be written: the directory {folder} {what}; create it first or "
                        f"point {key} at a file in an existing directory.")
    if not _can_create_in(folder):
        raise UserError(f"{key}={mask_userinfo(uri)!r} cannot be written ({folder} is not a writable directory); "
                        "launch from a writable directory or set tracking.uri.")


# --- an Optuna search's storage --------------------------------------------------------------------

def check_optuna_storage(resolved: str | None, launch_dir: str | Path) -> None:
    """The study's storage can be created where it is meant to live (nothing is created here): a journal
    file or a sqlite database in an existing, writable directory. Servers are opened by the sweeper."""
    key = "hydra.sweeper.storage"
    if resolved is None:
        return
    if "://" not in resolved:
        path = Path(resolved)
    else:
        found = sqlite_path(resolved, launch_dir)
        if found is None:
            return
        path = found
    if path.exists() and not path.is_file():
        raise UserError(f"{key}={str(path)!r} is not allowed: it is a directory, not a file the study can live in.")
    folder = path.parent
    if not folder.is_dir():
        raise UserError(f"{key}={str(path)!r} is not allowed: the directory {folder} does not exist; create it "
                        "first or name a file in an existing directory.")
    if not _can_create_in(folder) or (path.exists() and not os.access(path, os.R_OK | os.W_OK)):
        raise UserError(f"{key}={str(path)!r} cannot be written by this user; choose a writable location.")
