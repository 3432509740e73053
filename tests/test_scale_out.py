"""Scale-out on existing engines: the project's PostgreSQL-backed MLflow server, and Hydra's submitit
launcher (the SLURM path) run locally. PostgreSQL is Debian's package: installed here when missing
and the tests run as root; the tests skip, saying why, only where it cannot be had."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from test_double_launch import GRID, assert_each_member_trained_once, start_together, summary_rows

SMALL = ["data.limit_train=500", "epochs=2", "probe.enabled=false", "log_every=5"]


@pytest.fixture(scope="module")
def tracking_server(free_port, server_dir):
    # only a missing prerequisite skips (server_dir); the project's own failure to start the server fails
    from bn_study.server import start, stop

    root = server_dir("server")
    try:
        yield start(root / "server", "127.0.0.1", free_port(), free_port())
    finally:
        stop(root / "server")


def test_multirun_into_the_postgres_backed_server(tracking_server, tmp_path, runs_in):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    result = subprocess.run([sys.executable, "-m", "bn_study", "-m", "norm=none,bn1", "act=relu",
                             f"tracking.uri={tracking_server.tracking_uri}", "tracking.experiment=scale_out", *SMALL],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert not (tmp_path / "mlflow.db").exists()  # everything went to the server
    client, runs = runs_in(tracking_server.tracking_uri, "scale_out")
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(runs) == 3 and len(children) == 2
    assert all(r.info.status == "FINISHED" for r in runs)
    for child in children:
        assert [m.step for m in client.get_metric_history(child.info.run_id, "val_acc")] == [1, 2]
        assert {"config.yaml", "curves.png"} <= {a.path for a in client.list_artifacts(child.info.run_id)}
    # the artifacts are served: they live under the server's directory, not the launch dir
    assert any(Path(tracking_server.artifacts).rglob("curves.png"))


def test_submitit_launcher_runs_each_job_in_its_own_process(tmp_path, runs_in):
    result = subprocess.run([sys.executable, "-m", "bn_study", "-m", "hydra/launcher=local", "norm=none,bn1",
                             "tracking.figures=false", *SMALL], cwd=tmp_path, capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    _, runs = runs_in(tmp_path)
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(children) == 2 and all(r.info.status == "FINISHED" for r in runs)
    assert list(tmp_path.glob("multirun/*/*/.submitit/*"))  # submitit's own job folders: it really ran them


def test_three_optuna_workers_share_one_postgres_study_and_one_server(tracking_server, tmp_path, runs_in,
                                                                      monkeypatch):
    """Three independent searches at once on one PostgreSQL study, tracked on the PostgreSQL-backed server:
    the study holds exactly their trials, each number once, and each trial is exactly one MLflow child. The
    storage URL has no password: each worker, like the README's, reads it from the server's PGPASSFILE."""
    import optuna

    monkeypatch.setenv("PGPASSFILE", tracking_server.pgpass)  # the workers inherit it, and so does load_study

    workers, trials_each = 3, 2
    command = [sys.executable, "-m", "bn_study", "-m", "hparams_search=optuna", f"hydra.sweeper.n_trials={trials_each}",
               f"hydra.sweeper.storage={tracking_server.optuna_storage}", "hydra.sweeper.final=null",
               f"tracking.uri={tracking_server.tracking_uri}", "tracking.experiment=shared_search",
               "data.limit_train=1000", "epochs=1", "probe.enabled=false", "tracking.figures=false"]
    procs = [subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for _ in range(workers)]
    outputs = [p.communicate(timeout=900)[0] for p in procs]
    for proc, out in zip(procs, outputs):
        assert proc.returncode == 0, out[-4000:]

    study = optuna.load_study(study_name="shared_search", storage=tracking_server.optuna_storage)
    assert sorted(t.number for t in study.trials) == list(range(workers * trials_each))
    assert all(t.state.is_finished() for t in study.trials)

    _, runs = runs_in(tracking_server.tracking_uri, "shared_search")
    parents = [r for r in runs if r.data.tags.get("role") == "multirun parent"]
    trials = [r for r in runs if r.data.tags.get("stage") == "tune"]
    assert len(parents) == workers and len(runs) == workers + workers * trials_each
    assert sorted(int(r.data.tags["optuna_trial"]) for r in trials) == list(range(workers * trials_each))
    for parent in parents:  # each worker's trials hang under its own parent
        mine = [r for r in trials if r.data.tags["mlflow.parentRunId"] == parent.info.run_id]
        assert len(mine) == trials_each
    for run in trials:
        assert run.data.tags["optuna_state"] == study.trials[int(run.data.tags["optuna_trial"])].state.name


def test_two_identical_grids_at_once_against_the_server_train_each_member_once(tracking_server, tmp_path, runs_in):
    grid = [*GRID, f"tracking.uri={tracking_server.tracking_uri}", "tracking.experiment=double_launch"]
    # two machines: each its own launch dir (own checkpoints and sweep dirs), one server
    machines = [tmp_path / "a", tmp_path / "b"]
    for d in machines:
        d.mkdir()
    outs = start_together(machines, grid)
    assert_each_member_trained_once(tracking_server.tracking_uri, runs_in, "double_launch")
    first, second = (summary_rows(out) for out in outs)
    assert len(first) == 4 and first == second
