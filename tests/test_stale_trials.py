"""An Optuna trial whose search process was killed (kill -9) is failed by the next search of that study, with
the reason, and run again once with the same params; nothing stays RUNNING in the journal or in MLflow."""

from __future__ import annotations

import subprocess
from pathlib import Path

import optuna
from kills import kill_at_line, launch as launch_in
from mlflow import MlflowClient

ARGS = ["-m", "hparams_search=optuna", "hydra.sweeper.n_trials=1", "seed=0", "epochs=2", "data.limit_train=20000",
        "probe.enabled=false", "tracking.figures=false", "log_every=50"]


def launch(tmp_path: Path) -> subprocess.Popen:
    return launch_in(tmp_path, ARGS)


def study_of(tmp_path: Path) -> optuna.Study:
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(tmp_path / "optuna.journal")))
    (summary,) = optuna.get_all_study_summaries(storage)
    return optuna.load_study(study_name=summary.study_name, storage=storage)


def test_a_trial_of_a_killed_search_is_failed_and_run_again_once(tmp_path: Path) -> None:
    kill_at_line(launch(tmp_path), "epoch 1/2")  # the trial's job trains: its trial is RUNNING in the journal
    (killed,) = study_of(tmp_path).trials
    assert killed.state == optuna.trial.TrialState.RUNNING
    again = launch(tmp_path)
    out, _ = again.communicate(timeout=900)
    assert again.returncode == 0, out[-3000:]
    assert "left RUNNING by a search process that is gone: failed, and queued again once" in out
    first, retry = study_of(tmp_path).trials[:2]
    assert first.state == optuna.trial.TrialState.FAIL
    assert first.user_attrs["failure_reason"] == "its search process is gone; failed by a later search"
    assert retry.state == optuna.trial.TrialState.COMPLETE and retry.user_attrs["retry_of"] == first.number
    assert retry.params == first.params
    assert not [t for t in study_of(tmp_path).trials if t.state == optuna.trial.TrialState.RUNNING]
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    assert not [r for r in runs if r.info.status == "RUNNING"]
