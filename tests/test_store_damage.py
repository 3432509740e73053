"""A damaged or foreign ``mlflow.db`` is refused before anything is written: exit 2, one sentence naming the
file and how to recover; the file is left exactly as it was."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

QUICK = ("epochs=1", "data.limit_train=200", "probe.enabled=false", "tracking.figures=false")


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def refused(cli, launch: Path, want: str) -> None:
    db = launch / "mlflow.db"
    before, listing = digest(db), sorted(p.name for p in launch.iterdir())
    result = cli(*QUICK, cwd=launch)
    assert result.code == 2, result.err[-2000:]
    lines = [ln for ln in result.err.splitlines() if ln.strip()]
    assert len(lines) == 1 and want in lines[0] and str(db) in lines[0], lines
    assert "Traceback" not in result.out + result.err
    assert digest(db) == before and sorted(p.name for p in launch.iterdir()) == listing


def test_a_truncated_store_is_refused_with_how_to_recover(cli, tmp_path: Path) -> None:
    launch = tmp_path / "launch"
    launch.mkdir()
    assert cli(*QUICK, cwd=launch).code == 0  # a real store with a run in it
    db = launch / "mlflow.db"
    db.write_bytes(db.read_bytes()[: db.stat().st_size // 3])  # a crash, a full disk, a bad copy
    refused(cli, launch, "is damaged (database disk image is malformed); move it aside (recover what it holds with "
                         "`sqlite3 mlflow.db .recover`)")


def test_a_foreign_sqlite_database_is_not_turned_into_a_store(cli, tmp_path: Path) -> None:
    launch = tmp_path / "launch"
    launch.mkdir()
    con = sqlite3.connect(launch / "mlflow.db")
    con.execute("CREATE TABLE measurements (x REAL)")
    con.commit()
    con.close()
    refused(cli, launch, "is an SQLite database but not an MLflow store (its tables: measurements)")
