"""``python -m bn_study.server start | status | stop`` as real processes: status says "not running" (exit 1)
before a start and after a stop, and the server's settings (exit 0) while it runs; stop ends the MLflow
server's whole process group and PostgreSQL."""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bn_study.server import healthy


def server_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bn_study.server", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=300)


def group_members(pgid: int) -> list[int]:
    """Live (not zombie) processes in process group ``pgid``."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # gone meanwhile
            continue
        if fields[0] != "Z" and int(fields[2]) == pgid:
            found.append(int(stat.parent.name))
    return found


def wait_until(condition, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"{what} within {timeout:.0f} s")
        time.sleep(0.1)


def test_status_before_start_while_running_and_after_stop(free_port, server_dir):
    root = server_dir("server-cli")
    where = root / "srv"
    port, pg_port = free_port(), free_port()
    try:
        before = server_cli("status", "--dir", str(where), cwd=root)
        assert (before.returncode, before.stdout, before.stderr) == (1, "not running\n", "")

        started = server_cli("start", "--dir", str(where), "--port", str(port), "--pg-port", str(pg_port), cwd=root)
        assert started.returncode == 0, started.stderr[-3000:]
        uri, storage = f"http://127.0.0.1:{port}", f"postgresql+psycopg2://bn_study@127.0.0.1:{pg_port}/optuna"
        pgpass = where.resolve() / "pgpass"
        assert started.stdout.splitlines() == [
            f"tracking URI:   {uri}    (tracking.uri=... or MLFLOW_TRACKING_URI)",
            f"Optuna storage: {storage}    (hydra.sweeper.storage=...)",
            f"its password:   export PGPASSFILE={pgpass}    (libpq and psycopg2 read it; mode 0600)",
            f"artifacts:      {where.resolve() / 'artifacts'}"]
        info = json.loads((where / "server.json").read_text())
        pid = info["mlflow_pid"]
        assert healthy(uri) and group_members(pid)

        running = server_cli("status", "--dir", str(where), cwd=root)
        assert running.returncode == 0, running.stderr
        assert ast.literal_eval(running.stdout.strip()) == {
            "tracking_uri": uri, "optuna_storage": storage,
            "backend_store_uri": f"postgresql+psycopg2://bn_study@127.0.0.1:{pg_port}/mlflow",
            "artifacts": str(where.resolve() / "artifacts"), "mlflow_pid": pid, "pgpass": str(pgpass)}

        stopped = server_cli("stop", "--dir", str(where), cwd=root)
        assert (stopped.returncode, stopped.stdout) == (0, f"stopped the servers under {where}\n"), stopped.stderr
        wait_until(lambda: not group_members(pid), "the MLflow server's processes did not end")
        assert not healthy(uri)
        pg_ctl = shutil.which("pg_ctl") or sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))[-1]
        pg_status = subprocess.run(["runuser", "-u", "postgres", "--"] * (os.geteuid() == 0)
                                   + [str(pg_ctl), "-D", str(where / "pgdata"), "status"], capture_output=True, text=True)
        assert pg_status.returncode == 3, pg_status.stdout  # pg_ctl: "no server running"

        after = server_cli("status", "--dir", str(where), cwd=root)
        assert (after.returncode, after.stdout, after.stderr) == (1, "not running\n", "")
        assert not (where / "server.json").exists()
    finally:
        subprocess.run([sys.executable, "-m", "bn_study.server", "stop", "--dir", str(where)], capture_output=True)
