"""An Optuna search tells its answer under explicit names: the final stage's test metrics on the parent run and
in ``optimization_results.yaml`` (not the holdout value again), the final run named as such; each trial carries
the objective's name for optuna-dashboard and its MLflow run ids as a user attribute."""

from __future__ import annotations

import glob
import logging
import math

import optuna
import yaml

QUICK = ("epochs=1", "data.limit_train=300", "probe.enabled=false", "tracking.figures=false", "threads=1")


def test_the_final_stage_reports_its_test_metrics_by_name(cli, tmp_path, runs_in):
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.INFO)  # another test module may have quietened Optuna
    try:
        result = cli("-m", "hparams_search=optuna", "hydra.sweeper.n_trials=2", "optimizer.lr=choice(0.05, 0.2)",
                     "batch_size=choice(64)", "hydra/sweeper/sampler=grid", *QUICK)
    finally:
        optuna.logging.set_verbosity(verbosity)
    assert result.code == 0, result.err[-3000:]
    client, runs = runs_in(tmp_path)
    [parent] = [r for r in runs if r.data.tags.get("role") == "multirun parent"]
    trials = [r for r in runs if r.data.tags.get("stage") == "tune"]
    [final] = [r for r in runs if r.data.tags.get("stage") == "final"]
    assert final.info.run_name.startswith("final ") and final.info.run_name.endswith(" seed=0")
    assert sorted(r.info.run_name.split(" ")[:2] for r in trials) == [["trial", "0"], ["trial", "1"]]

    [path] = glob.glob(str(tmp_path / "multirun" / "*" / "*" / "optimization_results.yaml"))
    final_entry = yaml.safe_load(open(path))["final"]
    test_acc, val_acc = final.data.metrics["test_acc"], final.data.metrics["val_acc"]
    assert final_entry["runs"] == [final.info.run_id]
    assert final_entry["test"]["test_acc"] == float(f"{test_acc:.6g}")
    assert final_entry["objective"] == {"val_acc": float(f"{val_acc:.6g}")}
    assert "values" not in final_entry and math.isclose(final_entry["test"]["test_loss"], final.data.metrics["test_loss"],
                                                        rel_tol=1e-5)
    # the parent shows the test number itself, with every digit
    assert parent.data.metrics["final/test_acc"] == test_acc and parent.data.metrics["final/val_acc"] == val_acc
    assert parent.data.tags["final/runs"] == final.info.run_id
    said = result.out + result.err
    assert f"test_acc {test_acc:.4g}" in said  # the terminal's final line says it too
    # launch lines name the trial's settings, not the sweeper's plumbing
    # Optuna's own lines in the format of every other line, not its "[I 2026-…]"
    assert "[I 20" not in said
    assert "optimizer.lr=0.05 batch_size=64 data.val=holdout final_test=false" in said and "env_set" not in said and "BN_STUDY_OPTUNA" not in said

    study = optuna.load_study(study_name="bn_study", storage=optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(tmp_path / "optuna.journal"))))
    assert study.metric_names == ["val_acc"]
    by_trial = {int(r.data.tags["optuna_trial"]): r.info.run_id for r in trials}
    assert {t.number: t.user_attrs["mlflow_run_ids"] for t in study.trials} == {n: [i] for n, i in by_trial.items()}


def test_a_launch_line_rounds_a_sampled_number_and_drops_the_plumbing():
    from bn_study.ui import LaunchLineFilter

    record = logging.LogRecord("hydra._internal.core_plugins.basic_launcher", logging.INFO, "", 0,
                               "\t#3 : optimizer.lr=0.35950160623136634 batch_size=64 "
                               "++hydra.job.env_set.BN_STUDY_OPTUNA_TRIAL=3 act=relu", None, None)
    assert LaunchLineFilter().filter(record)
    assert record.getMessage() == "\t#3 : optimizer.lr≈0.3595 batch_size=64 act=relu"
