"""The Optuna sweeper on the real entry point and real MNIST, at toy sizes: the search resumes its study,
pruned trials show as such in Optuna and MLflow, and the fair comparison tags what the report reads."""

from __future__ import annotations

import os
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

TINY = ["data.limit_train=1000", "probe.enabled=false", "tracking.figures=false"]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One MLflow database for this module's tests (a fresh one costs seconds of schema migrations)."""
    return tmp_path_factory.mktemp("mlflow") / "mlflow.db"


def study_in(launch_dir: Path, name: str) -> optuna.Study:
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    storage = JournalStorage(JournalFileBackend(str(launch_dir / "optuna.journal")))
    return optuna.load_study(study_name=name, storage=storage)


def test_search_resumes_and_mirrors_trials_in_mlflow(cli, tmp_path: Path, store: Path, runs_in) -> None:
    search = ["-m", "hparams_search=optuna", "hydra.sweeper.n_trials=2", "epochs=1", *TINY,
              f"tracking.uri=sqlite:///{store}"]
    first = cli(*search)
    assert first.code == 0, first.err[-3000:]
    # again: the study resumes; a threshold no trial reaches prunes both new trials after epoch 1
    second = cli(*search, "hydra/sweeper/pruner=threshold", "hydra.sweeper.pruner.lower=0.99",
                 "hydra.sweeper.final=null")
    assert second.code == 0, second.err[-3000:]

    study = study_in(tmp_path, "bn_study")
    assert [t.number for t in study.trials] == [0, 1, 2, 3]
    assert [t.state for t in study.trials[2:]] == [TrialState.PRUNED, TrialState.PRUNED]
    assert all(set(t.params) == {"optimizer.lr", "batch_size"} for t in study.trials)

    client, runs = runs_in(f"sqlite:///{store}", "bn_study")
    parents = [r for r in runs if r.data.tags.get("role") == "multirun parent"]
    assert len(parents) == 2  # one per invocation
    for parent, numbers in zip(parents, ([0, 1], [2, 3])):
        children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
        tune = sorted((r for r in children if r.data.tags.get("stage") == "tune"),
                      key=lambda r: int(r.data.tags["optuna_trial"]))
        assert [int(r.data.tags["optuna_trial"]) for r in tune] == numbers
        for r in tune:
            trial = study.trials[int(r.data.tags["optuna_trial"])]
            assert r.data.tags["optuna_study"] == "bn_study"
            assert r.data.tags["optuna_state"] == trial.state.name  # mirrored
            assert r.info.status == {"COMPLETE": "FINISHED", "PRUNED": "KILLED"}[trial.state.name]
            assert r.data.params["data.val"] == "holdout"  # tuned on the held-out split ...
            assert "test_acc" not in r.data.metrics  # ... never on the test set
            assert float(r.data.params["optimizer.lr"]) == pytest.approx(trial.params["optimizer.lr"])
        assert parent.info.status == "FINISHED"

    # the first invocation: its best trial once more, measuring the test set, and the study on the parent
    first_parent = client.get_run(parents[0].info.run_id)
    best = min(study.trials[:2], key=lambda t: -t.value)  # maximize val_acc
    final = [r for r in runs if r.data.tags.get("stage") == "final"]
    assert len(final) == 1 and final[0].data.tags["mlflow.parentRunId"] == first_parent.info.run_id
    assert final[0].data.tags["optuna_best_trial"] == str(best.number)
    assert "test_acc" in final[0].data.metrics
    assert first_parent.data.metrics["best_value"] == pytest.approx(best.value)
    assert float(first_parent.data.params["best/optimizer.lr"]) == pytest.approx(best.params["optimizer.lr"])
    artifacts = {a.path for a in client.list_artifacts(first_parent.info.run_id)}
    assert {"optimization_history.png", "param_importances.png", "optimization_results.yaml"} <= artifacts


def test_fair_comparison_tunes_each_arm_then_reruns_its_best(cli, tmp_path: Path, store: Path, runs_in) -> None:
    result = cli("-m", "+experiment=fair_bn", "hydra.sweeper.n_trials=1", "epochs=1", *TINY,
                 f"tracking.uri=sqlite:///{store}",
                 "act=sigmoid",  # one activation: two arms, none and bn1
                 "hydra.sweeper.final.overrides=['data.val=test','seeds=[0,1]','epochs=1','resume=false',"
                 "'data.limit_train=1000']")
    assert result.code == 0, result.err[-3000:]
    _, runs = runs_in(f"sqlite:///{store}", "fair_bn")
    for arm in ("act=sigmoid norm=none", "act=sigmoid norm=bn1"):
        study = study_in(tmp_path, f"fair_bn {arm}")
        assert len(study.trials) == 1 and set(study.trials[0].params) == {"optimizer.lr"}
        tune = [r for r in runs if r.data.tags.get("arm") == arm and r.data.tags.get("stage") == "tune"]
        # one trial, trained over the experiment's 3 tuning seeds; its value is their mean holdout accuracy
        assert sorted(r.data.tags["seed"] for r in tune) == ["0", "1", "2"]
        assert all(r.data.params["data.val"] == "holdout" for r in tune)
        assert all(r.data.params["batch_size"] == "128" for r in tune)  # not searched: the experiment drops it
        assert study.trials[0].value == pytest.approx(sum(r.data.metrics["val_acc"] for r in tune) / 3, abs=1e-12)
        final = [r for r in runs if r.data.tags.get("arm") == arm and r.data.tags.get("stage") == "final"]
        assert sorted(r.data.tags["seed"] for r in final) == ["0", "1"]
        for r in final:
            assert r.data.params["data.val"] == "test" and r.data.params["epochs"] == "1"
            assert float(r.data.params["optimizer.lr"]) == pytest.approx(study.best_params["optimizer.lr"])
            assert r.data.tags["optuna_study"] == f"fair_bn {arm}"


def test_a_search_with_the_joblib_launcher_trains_its_trials_in_parallel(cli, tmp_path: Path, store: Path,
                                                                         runs_in) -> None:
    result = cli("-m", "hparams_search=optuna", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2",
                 "hydra.sweeper.n_jobs=2", "hydra.sweeper.n_trials=2", "hydra.sweeper.final=null", "epochs=1", *TINY,
                 f"tracking.uri=sqlite:///{store}", "tracking.experiment=joblib_search")
    assert result.code == 0, result.err[-3000:]
    study = study_in(tmp_path, "joblib_search")
    assert [(t.number, t.state) for t in study.trials] == [(0, TrialState.COMPLETE), (1, TrialState.COMPLETE)]
    _, runs = runs_in(f"sqlite:///{store}", "joblib_search")
    [parent] = [r for r in runs if r.data.tags.get("role") == "multirun parent"]
    tune = sorted((r for r in runs if r.data.tags.get("stage") == "tune"), key=lambda r: int(r.data.tags["optuna_trial"]))
    assert len(runs) == 3 and [r.data.tags["optuna_trial"] for r in tune] == ["0", "1"]
    for run, trial in zip(tune, study.trials):
        assert run.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert (run.info.status, run.data.tags["optuna_state"]) == ("FINISHED", "COMPLETE")
        assert run.data.metrics["val_acc"] == pytest.approx(trial.value)  # the objective the trial was told
        assert float(run.data.params["optimizer.lr"]) == pytest.approx(trial.params["optimizer.lr"])
    # the jobs ran in joblib's worker processes, not in this one (the owner tag: host:pid:start)
    pids = {int(r.data.tags["owner"].split(":")[1]) for r in tune}
    assert os.getpid() not in pids
    assert parent.info.status == "FINISHED" and parent.data.tags["trials_COMPLETE"] == "2"


def test_a_bad_search_space_stops_before_anything_is_written(cli, tmp_path: Path) -> None:
    result = cli("-m", "hparams_search=optuna", "optimizer.lr=interval(0, 1)", *TINY)
    assert result.code == 2
    assert "optimizer.lr=0.0" in result.err and "search space" in result.err
    assert not (tmp_path / "optuna.journal").exists() and not (tmp_path / "mlflow.db").exists()
    assert not (tmp_path / "multirun").exists()
