"""A job killed after its last epoch, in its closing moments (test metrics, figures), ends on the rerun with
every metric step logged once and every artifact there (a real kill -9, a real rerun)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import torch
from kills import kill_at_line, kill_when_store_has, launch as launch_in

ARGS = ["-m", "seed=0", "epochs=2", "data.limit_train=6000", "act=relu", "log_every=50"]


def launch(tmp_path: Path) -> subprocess.Popen:
    return launch_in(tmp_path, ARGS)


def test_a_job_killed_after_its_last_epoch_ends_once_on_the_rerun(tmp_path: Path, runs_in) -> None:
    kill_at_line(launch(tmp_path), "epoch 2/2")  # the last epoch is checkpointed; the job's closing work runs
    (saved,) = (tmp_path / "checkpoints").glob("*.pt")
    assert torch.load(saved, weights_only=True)["epoch"] == 2
    again = launch(tmp_path)
    out, _ = again.communicate(timeout=600)
    assert again.returncode == 0, out[-3000:]
    assert "resuming from the checkpoint after epoch 2" in out
    client, runs = runs_in(tmp_path)
    (run,) = [r for r in runs if r.data.tags.get("role") != "multirun parent"]
    assert run.info.status == "FINISHED"
    for key in ("val_acc", "train_loss", "act1_mean"):
        steps = [m.step for m in client.get_metric_history(run.info.run_id, key)]
        assert sorted(steps) == sorted(set(steps)), f"{key} logged twice at a step: {steps}"
    assert [m.step for m in client.get_metric_history(run.info.run_id, "test_acc")] == [2]
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"config.yaml", "curves.png", "activations.png"} <= artifacts


def test_a_job_killed_after_logging_its_test_metrics_does_not_log_them_twice(tmp_path: Path, runs_in) -> None:
    db = tmp_path / "mlflow.db"
    # the moment the store holds test_acc: the job is drawing its figures now
    kill_when_store_has(launch(tmp_path), db, "SELECT count(*) FROM metrics WHERE key = 'test_acc'")
    again = launch(tmp_path)
    out, _ = again.communicate(timeout=600)
    assert again.returncode == 0, out[-3000:]
    client, runs = runs_in(tmp_path)
    (run,) = [r for r in runs if r.data.tags.get("role") != "multirun parent"]
    assert run.info.status == "FINISHED"
    assert [m.step for m in client.get_metric_history(run.info.run_id, "test_acc")] == [2]
    assert {"curves.png", "activations.png"} <= {a.path for a in client.list_artifacts(run.info.run_id)}
