"""A shared tracking server for when one machine is not enough: PostgreSQL as MLflow's backend store
(and as Optuna's storage), and ``mlflow server`` serving the artifacts, bound to 127.0.0.1 by default.

    python -m bn_study.server start            # → tracking URI, Optuna storage URL and its password file
    export PGPASSFILE=$PWD/tracking-server/pgpass
    python -m bn_study --multirun ... tracking.uri=http://127.0.0.1:5000
    python -m bn_study.server status
    python -m bn_study.server stop

Everything lives in one directory (``--dir``, default ``./tracking-server``): the database cluster,
the artifacts, the logs, the server's pid and the two password files. PostgreSQL comes from Debian's
``postgresql`` package; when running as root, the cluster is owned by the ``postgres`` user (PostgreSQL
refuses root).

Every login to PostgreSQL needs a password; MLflow and Optuna log in as the ``bn_study`` role, whose
password is in ``<dir>/pgpass`` (mode 0600), read by libpq from ``$PGPASSFILE`` (see bn_study.postgres,
also for how a cluster from before passwords is upgraded).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path

from bn_study.errors import UserError, exit_for_user
from bn_study.postgres import APP_PGPASS, pg_binary, run_as_postgres, start_postgres

DEFAULT_DIR = "tracking-server"


@dataclass(frozen=True)
class ServerInfo:
    tracking_uri: str
    optuna_storage: str
    backend_store_uri: str
    artifacts: str
    mlflow_pid: int
    pgpass: str  # the PGPASSFILE that holds APP_ROLE's password


def healthy(url: str) -> bool:
    """Whether an MLflow server answers ``url``'s health check."""
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def start(root: Path, host: str, port: int, pg_port: int, timeout: float = 120.0) -> ServerInfo:
    """PostgreSQL and the MLflow server under ``root``, started unless they run already."""
    root = root.resolve()
    base = start_postgres(root, pg_port)
    tracking = f"http://{host}:{port}"
    backend = f"{base.replace('postgresql://', 'postgresql+psycopg2://')}/mlflow"
    pgpass = root / APP_PGPASS
    artifacts = root / "artifacts"
    artifacts.mkdir(exist_ok=True)
    info_file = root / "server.json"
    if info_file.exists() and healthy(tracking):
        running = json.loads(info_file.read_text())
        if running.get("backend_store_uri") == backend:
            return ServerInfo(**running)
        _end_group(running["mlflow_pid"])  # a server from before passwords, logged in as the superuser
        _wait_until_down(tracking, timeout)
    with open(root / "mlflow.log", "ab") as log:
        # A new session: the server outlives this command, and stop() can end its whole process group.
        # The password comes from PGPASSFILE, so the backend URI (in ps, in server.json) has none.
        proc = subprocess.Popen(
            [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", backend,
             "--artifacts-destination", str(artifacts), "--host", host, "--port", str(port), "--workers", "2"],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env={**os.environ, "PGPASSFILE": str(pgpass)})
    deadline = time.monotonic() + timeout
    while not healthy(tracking):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise UserError(f"mlflow server did not come up on {tracking}; see {root / 'mlflow.log'}.")
        time.sleep(0.5)
    info = ServerInfo(tracking, f"{base.replace('postgresql://', 'postgresql+psycopg2://')}/optuna", backend,
                      str(artifacts), proc.pid, str(pgpass))
    info_file.write_text(json.dumps(asdict(info)))
    return info


def _end_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        pass


def _wait_until_down(url: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while healthy(url) and time.monotonic() < deadline:
        time.sleep(0.2)


def stop(root: Path) -> None:
    root = root.resolve()
    info_file = root / "server.json"
    if info_file.exists():
        _end_group(json.loads(info_file.read_text())["mlflow_pid"])
        info_file.unlink()
    if (root / "pgdata" / "PG_VERSION").exists():
        subprocess.run(run_as_postgres([pg_binary("pg_ctl"), "-D", str(root / "pgdata"), "-m", "fast", "stop"]),
                       capture_output=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bn_study.server", description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=("start", "stop", "status"))
    parser.add_argument("--dir", default=DEFAULT_DIR, help="where the database, artifacts and logs live")
    parser.add_argument("--host", default="127.0.0.1", help="address the MLflow server binds to (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=5000, help="MLflow server port")
    parser.add_argument("--pg-port", type=int, default=5433, help="PostgreSQL port (on 127.0.0.1)")
    args = parser.parse_args(argv)
    root = Path(args.dir)
    try:
        if args.action == "start":
            info = start(root, args.host, args.port, args.pg_port)
            print(f"tracking URI:   {info.tracking_uri}    (tracking.uri=... or MLFLOW_TRACKING_URI)")
            print(f"Optuna storage: {info.optuna_storage}    (hydra.sweeper.storage=...)")
            print(f"its password:   export PGPASSFILE={info.pgpass}    (libpq and psycopg2 read it; mode 0600)")
            print(f"artifacts:      {info.artifacts}")
        elif args.action == "stop":
            stop(root)
            print(f"stopped the servers under {root}")
        else:
            info_file = root / "server.json"
            up = info_file.exists() and healthy(json.loads(info_file.read_text())["tracking_uri"])
            print(json.loads(info_file.read_text()) if up else "not running")
            sys.exit(0 if up else 1)
    except UserError as err:
        exit_for_user(err)


if __name__ == "__main__":
    main()
