"""The tracking server's PostgreSQL asks every login for a password, and no password given to bn_study
shows anywhere: real ``python -m bn_study.server start`` processes, real psql logins, real jobs.

- pg_hba.conf trusts no one: scram-sha-256 on the socket and on TCP, the superuser refused on TCP;
- the passwords are generated, kept in 0600 pgpass files and nowhere else (not in the printed lines,
  server.json, a command line or a log);
- MLflow and Optuna log in as ``bn_study``, no superuser, owner of the mlflow and optuna databases;
- the printed Optuna storage works with the printed ``PGPASSFILE``, and says so when it is missing;
- a password in ``tracking.uri`` or ``hydra.sweeper.storage`` reaches no output, no MLflow tag, param, run
  name or artifact, and no file under the launch or server directory;
- a cluster made by the old trust-everyone code is upgraded by the next start.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bn_study.postgres import pg_binary
from bn_study.util.redact import mask_userinfo

SMALL = ["data.limit_train=1000", "epochs=1", "probe.enabled=false", "tracking.figures=false"]
FAKE_SECRET = "Fake-Tracking-S3cret"  # a tracking server's basic-auth password, as a user would write it


def server_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bn_study.server", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=300)


def psql(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """psql that never prompts (-w), and finds no password but what ``env`` gives it."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    clean["PGPASSFILE"] = "/nonexistent"
    return subprocess.run([shutil.which("psql") or pg_binary("psql"), "-X", "-w", "-tA", *args],
                          env={**clean, **(env or {})}, capture_output=True, text=True, timeout=60)


def password_in(pgpass: Path) -> str:
    return pgpass.read_text().splitlines()[0].rsplit(":", 1)[1]


def files_holding(secret: str, *roots: Path, skip: tuple[Path, ...] = ()) -> list[Path]:
    found = []
    for root in roots:
        for path in root.rglob("*"):
            if path.is_file() and not path.is_symlink() and path not in skip:
                try:
                    if secret.encode() in path.read_bytes():
                        found.append(path)
                except OSError:  # a socket, a file gone meanwhile
                    continue
    return found


def bn_study(*args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 600) \
        -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bn_study", *args], cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}, timeout=timeout)


@pytest.fixture(scope="module")
def server(free_port, server_dir):
    """One started server for the module: its directory, ports, what start printed, and its passwords."""
    root = server_dir("server-security")
    where = root / "srv"
    port, pg_port = free_port(), free_port()
    try:
        started = server_cli("start", "--dir", str(where), "--port", str(port), "--pg-port", str(pg_port), cwd=root)
        assert started.returncode == 0, started.stderr[-3000:]
        yield {"dir": where.resolve(), "port": port, "pg_port": pg_port, "stdout": started.stdout,
               "info": json.loads((where / "server.json").read_text()),
               "app_pw": password_in(where / "pgpass"), "super_pw": password_in(where / "pgpass.superuser")}
    finally:
        server_cli("stop", "--dir", str(where), cwd=root)


def test_mask_userinfo_keeps_the_user_and_hides_the_password():
    assert mask_userinfo("tracking.uri='http://user:pw@127.0.0.1:5999': no") == \
        "tracking.uri='http://user:***@127.0.0.1:5999': no"
    assert mask_userinfo("postgresql+psycopg2://u:p@ss@host/db and mysql://:x@h") == \
        "postgresql+psycopg2://u:***@host/db and mysql://:***@h"  # an unencoded @ leaves no tail behind
    for untouched in ("postgresql://bn_study@127.0.0.1:5433/optuna", "http://host:5000/a@b", "sqlite:////tmp/m.db"):
        assert mask_userinfo(untouched) == untouched


def test_pg_hba_trusts_no_one_and_every_login_needs_its_password(server):
    rules = [line.split() for line in (server["dir"] / "pgdata" / "pg_hba.conf").read_text().splitlines()
             if line.strip() and not line.startswith("#")]
    assert rules and all(rule[-1] in ("scram-sha-256", "reject") for rule in rules), rules
    assert {rule[0] for rule in rules if rule[-1] == "scram-sha-256"} == {"local", "host"}

    tcp = ["-h", "127.0.0.1", "-p", str(server["pg_port"])]
    socket = ["-h", str(server["dir"] / "sockets"), "-p", str(server["pg_port"])]
    for where in (tcp, socket):
        for db in ("mlflow", "optuna", "postgres"):
            no_password = psql(*where, "-U", "bn_study", "-d", db, "-c", "SELECT 1")
            assert no_password.returncode != 0 and "no password supplied" in no_password.stderr, no_password
        wrong = psql(*where, "-U", "bn_study", "-d", "optuna", "-c", "SELECT 1", env={"PGPASSWORD": "wrong"})
        assert wrong.returncode != 0 and "password authentication failed" in wrong.stderr, wrong
        right = psql(*where, "-U", "bn_study", "-d", "optuna", "-c", "SELECT current_user",
                     env={"PGPASSFILE": str(server["dir"] / "pgpass")})
        assert (right.returncode, right.stdout) == (0, "bn_study\n"), right.stderr
    # the superuser: its own password, on the socket only
    su = {"PGPASSFILE": str(server["dir"] / "pgpass.superuser")}
    over_tcp = psql(*tcp, "-U", "postgres", "-d", "postgres", "-c", "SELECT 1", env=su)
    assert over_tcp.returncode != 0 and "rejects connection" in over_tcp.stderr, over_tcp
    assert psql(*socket, "-U", "postgres", "-d", "postgres", "-c", "SELECT 1").returncode != 0
    on_socket = psql(*socket, "-U", "postgres", "-d", "postgres", "-c", "SELECT current_user", env=su)
    assert (on_socket.returncode, on_socket.stdout) == (0, "postgres\n"), on_socket.stderr


def test_the_passwords_live_in_0600_files_and_nowhere_else(server):
    where = server["dir"]
    for name in ("pgpass", "pgpass.superuser"):
        assert (where / name).stat().st_mode & 0o777 == 0o600, name
    app_pw, super_pw = server["app_pw"], server["super_pw"]
    assert app_pw != super_pw and min(len(app_pw), len(super_pw)) >= 32
    assert f"export PGPASSFILE={where / 'pgpass'}" in server["stdout"]
    pid = server["info"]["mlflow_pid"]
    shown = [server["stdout"], (where / "server.json").read_text(), Path(f"/proc/{pid}/cmdline").read_bytes().decode()]
    for secret in (app_pw, super_pw):
        assert not any(secret in text for text in shown)
        assert files_holding(secret, where, skip=(where / "pgpass", where / "pgpass.superuser")) == []
    assert not list(where.glob(".initdb-password*"))  # initdb's copy of the superuser's password is gone


def test_the_app_role_is_no_superuser_and_owns_both_databases(server):
    app = ["-h", "127.0.0.1", "-p", str(server["pg_port"]), "-U", "bn_study"]
    env = {"PGPASSFILE": str(server["dir"] / "pgpass")}
    role = psql(*app, "-d", "mlflow", "-c",
                "SELECT rolsuper, rolcreatedb, rolcreaterole, rolreplication FROM pg_roles WHERE rolname='bn_study'",
                env=env)
    assert (role.returncode, role.stdout) == (0, "f|f|f|f\n"), role.stderr
    for db in ("mlflow", "optuna"):
        owner = psql(*app, "-d", db, "-c", f"SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname='{db}'",
                     env=env)
        assert owner.stdout == "bn_study\n", owner.stderr
        usable = psql(*app, "-d", db, "-v", "ON_ERROR_STOP=1", "-c",
                      "CREATE TABLE probe_t (x int); INSERT INTO probe_t VALUES (1); DROP TABLE probe_t", env=env)
        assert usable.returncode == 0, usable.stderr
    for forbidden in ("CREATE DATABASE other", "CREATE ROLE other", "ALTER ROLE bn_study SUPERUSER"):
        refused = psql(*app, "-d", "optuna", "-c", forbidden, env=env)
        assert refused.returncode != 0 and ("permission denied" in refused.stderr
                                            or "must be superuser" in refused.stderr), (forbidden, refused)


def test_mlflow_server_logs_in_as_the_app_role(server):
    from mlflow import MlflowClient

    client = MlflowClient(server["info"]["tracking_uri"])
    run = client.create_run(client.create_experiment("security_probe"))
    client.log_param(run.info.run_id, "x", "1")
    assert client.get_run(run.info.run_id).data.params == {"x": "1"}
    sessions = psql("-h", "127.0.0.1", "-p", str(server["pg_port"]), "-U", "bn_study", "-d", "mlflow", "-c",
                    "SELECT DISTINCT usename FROM pg_stat_activity WHERE datname='mlflow'",
                    env={"PGPASSFILE": str(server["dir"] / "pgpass")})
    assert sessions.stdout.split() == ["bn_study"], sessions


def test_the_printed_optuna_storage_works_with_the_printed_pgpassfile(server, tmp_path, monkeypatch):
    """The README's commands: the URL as printed, the password through the printed PGPASSFILE."""
    import optuna

    lines = dict(line.split(":", 1) for line in server["stdout"].splitlines())
    storage = lines["Optuna storage"].split()[0]
    pgpass = lines["its password"].split()[1].removeprefix("PGPASSFILE=")
    command = ["-m", "hparams_search=optuna", "hydra.sweeper.n_trials=1", f"hydra.sweeper.storage={storage}",
               "hydra.sweeper.final=null", "hydra.sweeper.study_name=printed", "tracking.experiment=printed",
               f"tracking.uri={lines['tracking URI'].split()[0]}", *SMALL]
    result = bn_study(*command, cwd=tmp_path, env={"PGPASSFILE": pgpass})
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    monkeypatch.setenv("PGPASSFILE", pgpass)
    study = optuna.load_study(study_name="printed", storage=storage)
    assert [t.state.name for t in study.trials] == ["COMPLETE"]

    clean = {k: v for k, v in os.environ.items() if k != "PGPASSFILE"}
    without = subprocess.run([sys.executable, "-m", "bn_study", *command], cwd=tmp_path, capture_output=True,
                             text=True, env=clean, timeout=600)
    assert without.returncode == 2, without.stdout[-3000:] + without.stderr[-3000:]
    error = [line for line in without.stderr.splitlines() if line.startswith("error: ")]
    assert len(error) == 1 and "no password supplied" in error[0] and "export PGPASSFILE=" in error[0], without.stderr
    assert "Traceback" not in without.stderr


def test_passwords_in_the_tracking_uri_and_the_storage_show_nowhere(server, tmp_path):
    """A user who writes both passwords into the URLs: the job runs, and neither password is in its output,
    in MLflow (tags, params, run names, config.yaml), in the study, or in any file it or the server wrote."""
    from mlflow import MlflowClient

    app_pw = server["app_pw"]
    tracking = f"http://alice:{FAKE_SECRET}@127.0.0.1:{server['port']}"
    storage = f"postgresql+psycopg2://bn_study:{app_pw}@127.0.0.1:{server['pg_port']}/optuna"
    result = bn_study("-m", "hparams_search=optuna", "hydra.sweeper.n_trials=1", f"hydra.sweeper.storage={storage}",
                      "hydra.sweeper.final=null", "hydra.sweeper.study_name=masked", f"tracking.uri={tracking}",
                      "tracking.experiment=masked", *SMALL, cwd=tmp_path, env={"PGPASSFILE": "/nonexistent"})
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    assert f"alice:***@127.0.0.1:{server['port']}" in output and "bn_study:***@127.0.0.1" in output

    client = MlflowClient(server["info"]["tracking_uri"])
    runs = client.search_runs([client.get_experiment_by_name("masked").experiment_id])
    assert len(runs) == 2  # the sweep's parent and its trial
    recorded = [output]
    for run in runs:
        recorded += [run.info.run_name, json.dumps(run.data.tags), json.dumps(run.data.params)]
        for artifact in client.list_artifacts(run.info.run_id):
            if artifact.path.endswith((".yaml", ".txt", ".json")):
                recorded.append(Path(client.download_artifacts(run.info.run_id, artifact.path, str(tmp_path / "dl")))
                                .read_text())
    assert any(f"alice:***@127.0.0.1:{server['port']}" in text for text in recorded[1:])  # masked, not dropped
    skip = (server["dir"] / "pgpass", server["dir"] / "pgpass.superuser")
    for secret in (FAKE_SECRET, app_pw):
        assert not [text[:200] for text in recorded if secret in text]
        assert files_holding(secret, tmp_path, server["dir"], skip=skip) == []


def test_a_password_in_an_unreachable_url_is_masked_in_the_error(free_port, tmp_path):
    port = free_port()
    down = bn_study(f"tracking.uri=http://user:{FAKE_SECRET}@127.0.0.1:{port}", *SMALL, cwd=tmp_path)
    assert down.returncode == 2, down.stderr
    assert f"tracking.uri='http://user:***@127.0.0.1:{port}': no MLflow server answers there" in down.stderr

    storage = bn_study("-m", "hparams_search=optuna", "hydra.sweeper.n_trials=1",
                       f"hydra.sweeper.storage=postgresql+psycopg2://u:{FAKE_SECRET}@127.0.0.1:{port}/db",
                       *SMALL, cwd=tmp_path)
    assert storage.returncode == 2, storage.stderr
    assert f"hydra.sweeper.storage='postgresql+psycopg2://u:***@127.0.0.1:{port}/db' cannot be opened" \
        in storage.stderr
    for result in (down, storage):
        assert FAKE_SECRET not in result.stdout + result.stderr
    assert files_holding(FAKE_SECRET, tmp_path) == []


def test_an_old_trust_cluster_is_upgraded_on_the_next_start(free_port, server_dir):
    """A cluster as the code before passwords left it — trust in pg_hba.conf, MLflow's and Optuna's tables
    owned by the superuser — takes passwords on the next start, and MLflow and Optuna go on as bn_study."""
    import optuna
    from mlflow import MlflowClient

    root = server_dir("server-upgrade")
    where = root / "srv"
    data, sockets = where / "pgdata", where / "sockets"
    port, pg_port = free_port(), free_port()
    as_postgres = ["runuser", "-u", "postgres", "--"] * (os.geteuid() == 0)
    try:
        for directory in (data, sockets):
            directory.mkdir(parents=True)
        data.chmod(0o700)
        if os.geteuid() == 0:
            for path in (data, sockets):
                shutil.chown(path, "postgres", "postgres")
        subprocess.run([*as_postgres, pg_binary("initdb"), "-D", str(data), "-U", "postgres", "--auth=trust",
                        "-E", "UTF8"], check=True, capture_output=True)
        subprocess.run([*as_postgres, pg_binary("pg_ctl"), "-D", str(data), "-l", "/dev/null", "-w", "-o",
                        f"-p {pg_port} -k {sockets} -c listen_addresses=127.0.0.1", "start"], check=True,
                       capture_output=True)
        old = f"postgresql+psycopg2://postgres@127.0.0.1:{pg_port}"
        for db in ("mlflow", "optuna"):
            assert psql(old.replace("+psycopg2", "") + "/postgres", "-c", f"CREATE DATABASE {db}").returncode == 0
        subprocess.run([sys.executable, "-m", "mlflow", "db", "upgrade", f"{old}/mlflow"], check=True,
                       capture_output=True, timeout=300)
        optuna.create_study(study_name="old", storage=f"{old}/optuna").optimize(lambda t: t.suggest_float("x", 0, 1),
                                                                               n_trials=1)

        started = server_cli("start", "--dir", str(where), "--port", str(port), "--pg-port", str(pg_port), cwd=root)
        assert started.returncode == 0, started.stderr[-3000:]
        assert "trust" not in (data / "pg_hba.conf").read_text()
        assert psql(f"{old.replace('+psycopg2', '')}/mlflow", "-c", "SELECT 1").returncode != 0  # trust is gone
        pgpass = {"PGPASSFILE": str(where / "pgpass")}
        app = f"postgresql://bn_study@127.0.0.1:{pg_port}"
        for db in ("mlflow", "optuna"):
            foreign = psql(f"{app}/{db}", "-c", "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON "
                           "n.oid = c.relnamespace WHERE n.nspname = 'public' AND pg_get_userbyid(c.relowner) <> "
                           "'bn_study'", env=pgpass)
            assert (foreign.returncode, foreign.stdout) == (0, "0\n"), foreign.stderr
        client = MlflowClient(f"http://127.0.0.1:{port}")
        run = client.create_run(client.create_experiment("after_upgrade"))
        assert client.get_run(run.info.run_id).info.status == "RUNNING"
        os.environ["PGPASSFILE"] = pgpass["PGPASSFILE"]
        try:
            study = optuna.load_study(study_name="old", storage=f"{app.replace('postgresql', 'postgresql+psycopg2')}"
                                                                 "/optuna")
            study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=1)
            assert len(study.trials) == 2
        finally:
            del os.environ["PGPASSFILE"]
    finally:
        server_cli("stop", "--dir", str(where), cwd=root)
        subprocess.run([*as_postgres, pg_binary("pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
                       capture_output=True)
