"""A new sqlite store starts as a copy of the empty one MLflow built before: the same schema, the same
migration head, experiment 0 pointing at its own directory — and MLflow uses it as its own."""

from __future__ import annotations

import sqlite3

from mlflow import MlflowClient

from bn_study.tracking import fresh_store
from bn_study.tracking.store import connect


def schema(db):
    with sqlite3.connect(db) as c:
        tables = sorted(c.execute("SELECT type, name, sql FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'"))
        return tables, c.execute("SELECT version_num FROM alembic_version").fetchall()


def test_a_seeded_store_is_the_store_mlflow_builds(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    seeded = []
    real_seed = fresh_store.seed
    monkeypatch.setattr(fresh_store, "seed", lambda db: seeded.append(real_seed(db)) or seeded[-1])
    built, copied = tmp_path / "a" / "mlflow.db", tmp_path / "b" / "mlflow.db"
    built.parent.mkdir()
    copied.parent.mkdir()

    connect(f"sqlite:///{built}")  # no template yet: MLflow migrates, and the result is kept
    assert seeded == [False]
    assert fresh_store._template().is_file()
    connect(f"sqlite:///{copied}")
    assert seeded == [False, True]

    assert schema(copied) == schema(built)
    with sqlite3.connect(copied) as c:
        [(location,)] = c.execute("SELECT artifact_location FROM experiments WHERE experiment_id = 0")
    assert location == str(copied.parent / "mlruns" / "0")
    client = MlflowClient(f"sqlite:///{copied}")
    run = client.create_run(client.create_experiment("e"))
    client.log_metric(run.info.run_id, "val_acc", 0.5, step=1)
    assert [m.value for m in client.get_metric_history(run.info.run_id, "val_acc")] == [0.5]
    assert [e.name for e in client.search_experiments()] == ["e", "Default"]


def test_an_existing_store_is_never_replaced(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    first = tmp_path / "a" / "mlflow.db"
    first.parent.mkdir()
    client = connect(f"sqlite:///{first}")
    client.create_experiment("kept")
    assert fresh_store.seed(first) is True  # there is a store: it stays as it is
    assert "kept" in [e.name for e in connect(f"sqlite:///{first}").search_experiments()]
