"""Where runs go: the tracking URI, a usable store before anything trains, the experiment.

The store is ``sqlite:///<launch dir>/mlflow.db`` with artifacts under ``<launch dir>/mlruns`` unless
``tracking.uri`` or ``$MLFLOW_TRACKING_URI`` says otherwise, so a plain ``mlflow ui`` in the directory
the user launched from shows every run.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from bn_study.errors import UserError
from bn_study.util.disk import quiet_disk_tracebacks
from bn_study.tracking import fresh_store
from bn_study.util.redact import has_password, mask_userinfo
from bn_study.util.names import slug

if TYPE_CHECKING:
    import urllib.request


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
    quiet_disk_tracebacks()
    db = local_sqlite_file(uri)
    if db is not None:
        probe = db
        while not probe.exists() and probe != probe.parent:
            probe = probe.parent
        usable = probe.is_file() if probe == db else probe.is_dir()
        if not usable or not os.access(probe, os.W_OK):
            raise UserError(f"tracking.uri={mask_userinfo(uri)!r} cannot be written ({probe} is not a writable "
                            f"{'file' if probe == db else 'directory'}); launch from a writable directory or set "
                            "tracking.uri.")
    if has_password(uri):  # MLflow prints a link to every run it ends, password and all
        os.environ["MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT"] = "true"
    if db is None or not db.parent.is_dir():
        return MlflowClient(uri)
    # Two launches into a fresh directory at once would both run MLflow's migrations on the one new file
    # ("duplicate column name"): whoever comes second waits here and finds the tables made. The lock is on
    # the directory itself, so no lock file is left behind, and it dies with its process.
    with _locked(db.parent):
        fresh = not db.exists() and not fresh_store.seed(db)
        client = MlflowClient(uri)
        client._tracking_client.store  # noqa: B018 - builds (or checks) the schema now, under the lock
    if fresh:  # MLflow has just built an empty store: the next new one can start as its copy
        fresh_store.keep(db)
    return client


@contextlib.contextmanager
def _locked(directory: Path) -> Iterator[None]:
    fd = os.open(directory, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def check_reachable(uri: str) -> None:
    """Before any training, and creating nothing: the server answers (http), the database accepts a
    connection (postgresql, mysql, …), a local sqlite file is a database (when it exists). Whether a URI
    is usable at all, and a sqlite file writable, is bn_study.config.rules.check_tracking_uri's business."""
    if uri.startswith(("http://", "https://")):
        import urllib.request

        try:
            with urllib.request.urlopen(_health_request(uri), timeout=5) as response:
                if response.status == 200:
                    return
        except OSError as err:
            raise UserError(f"tracking.uri={mask_userinfo(uri)!r}: no MLflow server answers there "
                            f"({mask_userinfo(str(err))}); start one (python -m bn_study.server start) or point tracking.uri "
                            "elsewhere.") from None
        raise UserError(f"tracking.uri={mask_userinfo(uri)!r}: the server answered /health with an error; is it an MLflow server?")
    db = local_sqlite_file(uri)
    if db is not None:
        _check_sqlite_database(uri, db)
        return
    if uri.split(":", 1)[0].split("+", 1)[0].lower() in DATABASE_PORTS:
        _check_database_server(uri)


def _health_request(uri: str) -> urllib.request.Request:
    """GET <uri>/health. urllib takes ``user:password@`` for part of the host name; MLflow's client (requests)
    sends it as basic auth, so the check does the same."""
    import base64
    import urllib.request
    from urllib.parse import unquote, urlsplit

    parts = urlsplit(uri.rstrip("/"))
    host = parts.netloc.rsplit("@", 1)[-1]
    request = urllib.request.Request(parts._replace(netloc=host).geturl() + "/health")
    if parts.username is not None:
        pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}".encode()
        request.add_header("Authorization", "Basic " + base64.b64encode(pair).decode())
    return request


# default ports of the database servers MLflow can keep runs in
DATABASE_PORTS = {"postgresql": 5432, "mysql": 3306, "mssql": 1433}


def _check_database_server(uri: str) -> None:
    """The URL's Python driver imports and its server accepts a connection (a TCP connect, not MLflow's
    client, which retries a dead server for most of an hour and creates its tables on connecting)."""
    import socket

    from sqlalchemy.engine import make_url

    shown = mask_userinfo(uri)
    try:
        url = make_url(uri)
        url.get_dialect().import_dbapi()
    except ImportError as err:
        raise UserError(f"tracking.uri={shown!r}: the tracking database cannot be opened (its driver is not "
                        f"installed: {err}); install it, or name an installed one: {url.get_backend_name()}+<driver>://….") from None
    except Exception as err:  # noqa: BLE001 - not a URL SQLAlchemy can read
        raise UserError(f"tracking.uri={shown!r}: the tracking database cannot be opened ({mask_userinfo(str(err))}).") from None
    port = url.port or DATABASE_PORTS[url.get_backend_name()]
    try:
        socket.create_connection((url.host or "localhost", port), timeout=5).close()
    except OSError as err:
        raise UserError(f"tracking.uri={shown!r}: the tracking database cannot be opened (no server answers at "
                        f"{url.host}:{port}: {err.strerror or err}); check the URI and that the server is running.") from None


def _check_sqlite_database(uri: str, db: Path) -> None:
    """An existing, non-empty file must be an SQLite database (read only; a missing one MLflow creates later)."""
    if not db.is_file() or db.stat().st_size == 0:
        return
    try:
        with open(db, "rb") as f:
            header = f.read(16)
    except OSError as err:
        raise UserError(f"tracking.uri={mask_userinfo(uri)!r} cannot be read ({err.strerror}).") from None
    if header != b"SQLite format 3\x00":
        raise UserError(f"tracking.uri={mask_userinfo(uri)!r}: {db} is not an SQLite database; point tracking.uri at a new "
                        "file or an MLflow database.")
    with _locked(db.parent):  # not while another launch is building its tables: a half-made store looks foreign
        problem = _sqlite_problem(db)
    if problem is not None:
        raise UserError(f"tracking.uri={mask_userinfo(uri)!r}: {db} {problem}.")


QUICK_CHECK_MAX_BYTES = 256 << 20  # larger stores skip SQLite's page-by-page check (seconds per GB)


def _sqlite_problem(db: Path) -> str | None:
    """What makes an SQLite file unusable as this project's MLflow store, read only: damage, or someone
    else's tables (MLflow would add its own beside them)."""
    import sqlite3

    recover = (f"move it aside (recover what it holds with `sqlite3 {db.name} .recover`) and run again, "
               "or point tracking.uri at another file")
    try:
        con = sqlite3.connect(f"{db.resolve().as_uri()}?mode=ro", uri=True, timeout=30)
        try:
            tables = {row[0] for row in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            if tables and not {"alembic_version", "experiments", "runs"} <= tables:
                shown = ", ".join(sorted(tables)[:4]) + (", …" if len(tables) > 4 else "")
                return (f"is an SQLite database but not an MLflow store (its tables: {shown}); point tracking.uri "
                        "at a new file or an MLflow database")
            if tables and db.stat().st_size <= QUICK_CHECK_MAX_BYTES:
                verdict = con.execute("PRAGMA quick_check(1)").fetchone()[0]
                if verdict != "ok":
                    return f"is damaged ({verdict}); {recover}"
        finally:
            con.close()
    except sqlite3.DatabaseError as err:  # "database disk image is malformed", "file is not a database"
        return f"is damaged ({err}); {recover}"
    return None


def get_or_create_experiment(client: MlflowClient, name: str, uri: str,
                             tags: dict[str, str] | None = None) -> tuple[str, bool]:
    """The experiment's id, and whether this call created it (artifacts under ``<db dir>/mlruns``). Of
    processes creating it at once, the store's unique name lets one be the creator; the others find it."""
    found = client.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id, False
    db = local_sqlite_file(uri)
    location = (db.parent / "mlruns" / slug(name)).as_uri() if db is not None else None
    try:
        return client.create_experiment(name, artifact_location=location, tags=tags), True
    except MlflowException:  # created meanwhile by another process
        found = client.get_experiment_by_name(name)
        if found is None:
            raise
        return found.experiment_id, False


# MLflow 3's UI opens an experiment without this tag in its GenAI view (traces, an assistant panel); this
# kind opens the runs table and charts
KIND_TAG, MODEL_TRAINING = "mlflow.experimentKind", "custom_model_development"


def ensure_experiment(client: MlflowClient, name: str, uri: str) -> str:
    """The experiment's id, creating it if it does not exist, marked as model training unless someone set
    its kind already."""
    experiment_id, created = get_or_create_experiment(client, name, uri, tags={KIND_TAG: MODEL_TRAINING})
    if not created and KIND_TAG not in client.get_experiment(experiment_id).tags:
        client.set_experiment_tag(experiment_id, KIND_TAG, MODEL_TRAINING)
    return experiment_id


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name) or "experiment"


