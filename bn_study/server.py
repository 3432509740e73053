"""A shared tracking server for when one machine is not enough: PostgreSQL as MLflow's backend store
(and as Optuna's storage), and ``mlflow server`` serving the artifacts, bound to 127.0.0.1 by default.

    python -m bn_study.server start            # → tracking URI and Optuna storage URL, printed
    python -m bn_study --multirun ... tracking.uri=http://127.0.0.1:5000
    python -m bn_study.server status
    python -m bn_study.server stop

Everything lives in one directory (``--dir``, default ``./tracking-server``): the database cluster,
the artifacts, the logs and the server's pid. PostgreSQL comes from Debian's ``postgresql`` package;
when running as root, the cluster is owned by the ``postgres`` user (PostgreSQL refuses root).
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path

from bn_study.errors import UserError, exit_for_user

DEFAULT_DIR = "tracking-server"
DATABASES = ("mlflow", "optuna")


@dataclass(frozen=True)
class ServerInfo:
    tracking_uri: str
    optuna_storage: str
    backend_store_uri: str
    artifacts: str
    mlflow_pid: int


def pg_binary(name: str) -> str:
    """A PostgreSQL server program: on PATH, or in Debian's versioned directory."""
    found = shutil.which(name) or next(iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)), None)
    if not found:
        raise UserError(f"PostgreSQL's {name} was not found; install Debian's package (apt-get install postgresql).")
    return found


def _as_postgres(cmd: list[str]) -> list[str]:
    """PostgreSQL will not run as root; under root, run it as the postgres user."""
    if os.geteuid() != 0:
        return cmd
    runuser = shutil.which("runuser")
    if runuser is None:
        raise UserError("running as root needs runuser to start PostgreSQL as the postgres user.")
    return [runuser, "-u", "postgres", "--", *cmd]


def _run(cmd: list[str], **kwargs: object) -> subprocess.CompletedProcess:
    result = subprocess.run(cmd, capture_output=True, text=True, **kwargs)  # type: ignore[call-overload]
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({result.returncode}): {result.stderr.strip() or result.stdout.strip()}")
    return result


def _chown_to_postgres(path: Path) -> None:
    if os.geteuid() == 0:
        shutil.chown(path, user="postgres", group="postgres")


def start_postgres(root: Path, port: int) -> str:
    """Initialise (once) and start the cluster under ``root/pgdata``; returns the base URL."""
    data, sockets = root / "pgdata", root / "sockets"
    for directory in (root, sockets):
        directory.mkdir(parents=True, exist_ok=True)
    _chown_to_postgres(sockets)
    if not (data / "PG_VERSION").exists():
        data.mkdir(exist_ok=True)
        data.chmod(0o700)
        _chown_to_postgres(data)
        _run(_as_postgres([pg_binary("initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8"]))
    log_file = root / "postgres.log"
    log_file.touch()
    _chown_to_postgres(log_file)
    status = subprocess.run(_as_postgres([pg_binary("pg_ctl"), "-D", str(data), "status"]), capture_output=True)
    if status.returncode != 0:
        options = f"-p {port} -k {sockets} -c listen_addresses=127.0.0.1"
        _run(_as_postgres([pg_binary("pg_ctl"), "-D", str(data), "-o", options, "-l", str(log_file), "-w", "start"]))
    base = f"postgresql://postgres@127.0.0.1:{port}"
    psql = shutil.which("psql") or pg_binary("psql")
    for name in DATABASES:
        exists = _run([psql, f"{base}/postgres", "-tAc", f"SELECT 1 FROM pg_database WHERE datname='{name}'"])
        if exists.stdout.strip() != "1":
            _run([psql, f"{base}/postgres", "-c", f"CREATE DATABASE {name}"])
    return base


def healthy(url: str) -> bool:
    """Whether an MLflow server answers ``url``'s health check."""
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def start(root: Path, host: str, port: int, pg_port: int, timeout: float = 120.0) -> ServerInfo:
    root = root.resolve()
    base = start_postgres(root, pg_port)
    tracking = f"http://{host}:{port}"
    backend = f"postgresql+psycopg2://postgres@127.0.0.1:{pg_port}/mlflow"
    artifacts = root / "artifacts"
    artifacts.mkdir(exist_ok=True)
    info_file = root / "server.json"
    if info_file.exists() and healthy(tracking):
        return ServerInfo(**json.loads(info_file.read_text()))
    with open(root / "mlflow.log", "ab") as log:
        # A new session: the server outlives this command, and stop() can end its whole process group.
        proc = subprocess.Popen(
            [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", backend,
             "--artifacts-destination", str(artifacts), "--host", host, "--port", str(port), "--workers", "2"],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + timeout
    while not healthy(tracking):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise UserError(f"mlflow server did not come up on {tracking}; see {root / 'mlflow.log'}.")
        time.sleep(0.5)
    info = ServerInfo(tracking, f"{base.replace('postgresql://', 'postgresql+psycopg2://')}/optuna", backend,
                      str(artifacts), proc.pid)
    info_file.write_text(json.dumps(asdict(info)))
    return info


def stop(root: Path) -> None:
    root = root.resolve()
    info_file = root / "server.json"
    if info_file.exists():
        pid = json.loads(info_file.read_text())["mlflow_pid"]
        try:
            os.killpg(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        info_file.unlink()
    if (root / "pgdata" / "PG_VERSION").exists():
        subprocess.run(_as_postgres([pg_binary("pg_ctl"), "-D", str(root / "pgdata"), "-m", "fast", "stop"]),
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
