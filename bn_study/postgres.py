"""The tracking server's PostgreSQL cluster, password logins only.

Every login needs a password (scram-sha-256, on the socket and on TCP; pg_hba.conf holds no ``trust``).
MLflow and Optuna log in as ``bn_study``, a role that owns the ``mlflow`` and ``optuna`` databases and
nothing else (no superuser, no CREATEDB, no CREATEROLE); its password is in ``<dir>/pgpass``, the file
format libpq (psycopg2) reads from ``$PGPASSFILE``, so no URL, command line or ``ps`` listing carries it.
The superuser ``postgres`` has its own password in ``<dir>/pgpass.superuser`` and logs in on the Unix
socket only (TCP refuses it). Both files are generated (``secrets.token_urlsafe``) and kept at mode 0600.

A cluster made before passwords (PG_VERSION there, ``trust`` in pg_hba.conf) is upgraded by the next
``start``: while trust still lets the superuser in, it gets its password, ``bn_study`` is created and
handed both databases and their tables, then pg_hba.conf is rewritten and the server reloaded
(bn_study.server then restarts an MLflow server still logged in as ``postgres``).
"""

from __future__ import annotations

import glob
import os
import secrets
import shutil
import subprocess
from pathlib import Path

from bn_study.errors import UserError

DATABASES = ("mlflow", "optuna")
SUPERUSER = "postgres"
APP_ROLE = "bn_study"  # what MLflow and Optuna log in as: owns DATABASES, may do nothing else
APP_PGPASS, SUPERUSER_PGPASS = "pgpass", "pgpass.superuser"
# first match wins: the superuser only on the socket, everyone with a password, nothing trusted
PG_HBA = f"""# written by bn_study.postgres: every login needs its password; the superuser only on the socket
local   all   all                           scram-sha-256
host    all   {SUPERUSER}   127.0.0.1/32    reject
host    all   {SUPERUSER}   ::1/128         reject
host    all   all        127.0.0.1/32    scram-sha-256
host    all   all        ::1/128         scram-sha-256
"""


def pg_binary(name: str) -> str:
    """A PostgreSQL server program: on PATH, or in Debian's versioned directory."""
    found = shutil.which(name) or next(iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)), None)
    if not found:
        raise UserError(f"PostgreSQL's {name} was not found; install Debian's package (apt-get install postgresql).")
    return found


def run_as_postgres(cmd: list[str]) -> list[str]:
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


def password_file(path: Path, role: str) -> str:
    """``role``'s password from its pgpass file at ``path``, generated (and the file written) the first time;
    the file is set to 0600 on every start, since libpq ignores a pgpass file others can read."""
    if path.exists():
        path.chmod(0o600)
        fields = path.read_text().split("\n", 1)[0].split(":")
        if len(fields) != 5 or fields[3] != role or not fields[4]:
            raise UserError(f"{path} is not a pgpass line for {role} (*:*:*:{role}:<password>); restore it, or "
                            "delete it to have a new password made.")
        return fields[4]
    password = secrets.token_urlsafe(32)  # letters, digits, - and _: safe in SQL and in pgpass fields
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(f"*:*:*:{role}:{password}\n")
    return password


def start_postgres(root: Path, port: int) -> str:
    """Initialise (once) and start the cluster under ``root/pgdata`` with password logins only; returns the
    base URL of the application role (its password in ``root/pgpass``)."""
    data, sockets = root / "pgdata", root / "sockets"
    for directory in (root, sockets):
        directory.mkdir(parents=True, exist_ok=True)
    _chown_to_postgres(sockets)
    superuser_pw = password_file(root / SUPERUSER_PGPASS, SUPERUSER)
    app_pw = password_file(root / APP_PGPASS, APP_ROLE)
    if not (data / "PG_VERSION").exists():
        data.mkdir(exist_ok=True)
        data.chmod(0o700)
        _chown_to_postgres(data)
        _initdb(root, data, superuser_pw)
    log_file = root / "postgres.log"
    log_file.touch()
    _chown_to_postgres(log_file)
    status = subprocess.run(run_as_postgres([pg_binary("pg_ctl"), "-D", str(data), "status"]), capture_output=True)
    if status.returncode != 0:
        options = f"-p {port} -k {sockets} -c listen_addresses=127.0.0.1"
        _run(run_as_postgres([pg_binary("pg_ctl"), "-D", str(data), "-o", options, "-l", str(log_file), "-w", "start"]))
    # Every start, in this order: the passwords before pg_hba.conf asks for them (an old trust cluster is
    # upgraded here), the role and its databases, then the rules that lock the rest out.
    admin = _Admin(root, port)
    admin.sql("postgres", _roles_sql(superuser_pw, app_pw))
    for name in DATABASES:
        if admin.sql("postgres", f"SELECT 1 FROM pg_database WHERE datname='{name}'").strip() != "1":
            admin.sql("postgres", f"CREATE DATABASE {name} OWNER {APP_ROLE}")
        admin.sql("postgres", f"ALTER DATABASE {name} OWNER TO {APP_ROLE}")
        admin.sql(name, _HAND_OVER_SQL)
    hba = data / "pg_hba.conf"
    if hba.read_text() != PG_HBA:
        hba.write_text(PG_HBA)
        _chown_to_postgres(hba)
        _run(run_as_postgres([pg_binary("pg_ctl"), "-D", str(data), "reload"]))
    return f"postgresql://{APP_ROLE}@127.0.0.1:{port}"


def _initdb(root: Path, data: Path, superuser_pw: str) -> None:
    """initdb reads the superuser's password from a file the postgres user can read: a private copy, gone
    as soon as initdb is done."""
    pwfile = root / ".initdb-password"
    fd = os.open(pwfile, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(superuser_pw + "\n")
        _chown_to_postgres(pwfile)
        _run(run_as_postgres([pg_binary("initdb"), "-D", str(data), "-U", SUPERUSER, "--auth=scram-sha-256",
                           f"--pwfile={pwfile}", "-E", "UTF8"]))
    finally:
        pwfile.unlink(missing_ok=True)


def _roles_sql(superuser_pw: str, app_pw: str) -> str:
    # a failing statement would be logged with its text, password included: not these
    return f"""SET log_min_error_statement = panic;
SET password_encryption = 'scram-sha-256';
ALTER ROLE {SUPERUSER} WITH PASSWORD '{superuser_pw}';
DO $$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{APP_ROLE}') THEN CREATE ROLE {APP_ROLE}; END IF;
END $$;
ALTER ROLE {APP_ROLE} WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS
  PASSWORD '{app_pw}';
"""


# What the superuser made in a database before the application role existed (MLflow's and Optuna's tables
# in an upgraded cluster) goes to the role: tables first (their own sequences follow them), then views,
# free-standing sequences and enum types (Optuna's). Nothing to do in a cluster born with the role.
_HAND_OVER_SQL = f"""DO $$ DECLARE r record; BEGIN
  FOR r IN SELECT c.oid::regclass AS name, c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
           WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'v', 'm') AND pg_get_userbyid(c.relowner) <> '{APP_ROLE}'
           ORDER BY c.relkind IN ('v', 'm') LOOP
    EXECUTE format(CASE r.relkind WHEN 'v' THEN 'ALTER VIEW %s OWNER TO {APP_ROLE}'
                   WHEN 'm' THEN 'ALTER MATERIALIZED VIEW %s OWNER TO {APP_ROLE}'
                   ELSE 'ALTER TABLE %s OWNER TO {APP_ROLE}' END, r.name);
  END LOOP;
  FOR r IN SELECT c.oid::regclass AS name FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
           WHERE n.nspname = 'public' AND c.relkind = 'S' AND pg_get_userbyid(c.relowner) <> '{APP_ROLE}' LOOP
    EXECUTE format('ALTER SEQUENCE %s OWNER TO {APP_ROLE}', r.name);
  END LOOP;
  FOR r IN SELECT t.oid::regtype AS name FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
           WHERE n.nspname = 'public' AND t.typtype = 'e' AND pg_get_userbyid(t.typowner) <> '{APP_ROLE}' LOOP
    EXECUTE format('ALTER TYPE %s OWNER TO {APP_ROLE}', r.name);
  END LOOP;
END $$;
"""


class _Admin:
    """psql as the superuser on the cluster's socket, its password read from its own pgpass file; the SQL
    goes in on stdin, so passwords never show in a command line."""

    def __init__(self, root: Path, port: int) -> None:
        self.root, self.port = root, port
        self.psql = shutil.which("psql") or pg_binary("psql")
        self.env = {**os.environ, "PGPASSFILE": str(root / SUPERUSER_PGPASS)}

    def sql(self, database: str, text: str) -> str:
        cmd = [self.psql, "-h", str(self.root / "sockets"), "-p", str(self.port), "-U", SUPERUSER, "-d", database,
               "-X", "-q", "-tA", "-v", "ON_ERROR_STOP=1", "-f", "-"]
        result = subprocess.run(cmd, input=text, capture_output=True, text=True, env=self.env)
        if result.returncode != 0:
            if "password authentication failed" in result.stderr:
                raise UserError(f"the database cluster in {self.root / 'pgdata'} refuses the superuser password "
                                f"in {self.root / SUPERUSER_PGPASS}; restore that file, or start a new --dir.")
            raise RuntimeError(f"psql on {database} failed ({result.returncode}): {result.stderr.strip()}")
        return result.stdout
