"""The Optuna sweeper on small Hydra apps: what Hydra's Optuna plugin promises (its test suite's facts,
rewritten here), and what it lacked — pruning, NaN, resume, crashes with tracebacks, shared storages."""

from __future__ import annotations

import importlib.util
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import optuna
import pytest
from hydra.core.plugins import Plugins
from hydra.plugins.sweeper import Sweeper
from omegaconf import OmegaConf
from optuna.trial import TrialState

from bn_study.errors import UserError
from bn_study.sweep.trial import TrialReporter

APP_DIR = Path(__file__).resolve().parent / "optuna_app"
SPHERE_APP = APP_DIR / "sphere.py"
_spec = importlib.util.spec_from_file_location("optuna_sphere_app", SPHERE_APP)
sphere_app = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(sphere_app)


def sweep(runner: Any, tmp_path: Path, *overrides: str, task: Any = sphere_app.sphere) -> dict:
    """Run the sphere app's multirun in this process; returns optimization_results.yaml."""
    sweep_dir = tmp_path / "sweep"
    with runner(calling_file=str(SPHERE_APP), calling_module=None, task_function=task, config_path="conf",
                config_name="sphere", overrides=list(overrides), temp_dir=sweep_dir) as s:
        assert s.returns is None  # like Hydra's plugin, the sweeper returns nothing
        return OmegaConf.to_container(OmegaConf.load(sweep_dir / "optimization_results.yaml"))


def trials_of(storage: str, name: str = "sphere") -> list[optuna.trial.FrozenTrial]:
    from bn_study.sweep.storage import open_storage

    return optuna.load_study(study_name=name, storage=open_storage(storage, "/")).trials


def test_launch_jobs_in_batches_of_n_jobs(hydra_sweep_runner: Any, tmp_path: Path, capsys: Any) -> None:
    # Hydra's test app under its sweep runner: the runner's stand-in task returns 100 for every job
    storage = str(tmp_path / "launch.journal")
    with hydra_sweep_runner(calling_file=None, calling_module="hydra.test_utils.a_module", config_path="configs",
                            config_name="compose.yaml", task_function=None, temp_dir=str(tmp_path / "sweep"),
                            overrides=["hydra/sweeper=optuna", "hydra/launcher=basic", "hydra.sweeper.n_trials=8",
                                       "hydra.sweeper.n_jobs=3", "hydra.sweeper.study_name=launch",
                                       f"hydra.sweeper.storage={storage}"]) as s:
        assert s.returns is None
    trials = trials_of(storage, "launch")
    assert [(t.number, t.state, t.value) for t in trials] == [(n, TrialState.COMPLETE, 100) for n in range(8)]
    log = capsys.readouterr().out
    assert [line.split("] ")[-1] for line in log.splitlines() if "Launching" in line] == [
        "Launching 3 jobs locally", "Launching 3 jobs locally", "Launching 2 jobs locally"]  # n_jobs per batch


HYDRA_TEST_CONFIGS = Path(importlib.util.find_spec("hydra.test_utils").origin).parent / "configs"


@pytest.mark.parametrize("require_completed", [True, False])
def test_every_trial_failing_is_said(tmp_path: Path, require_completed: bool) -> None:
    """A real process whose task returns None (Hydra's test app, not a number): each trial is FAIL with the
    reason in the log, the summary counts them, and the results say there is no best trial. Then, as in Hydra's
    plugin, exit 1 ("no trials are completed yet"); hydra.sweeper.require_completed=false: exit 0."""
    storage = tmp_path / "fail.journal"
    done = subprocess.run([sys.executable, "-m", "hydra.test_utils.a_module", f"--config-dir={HYDRA_TEST_CONFIGS}",
                           "--config-name=compose", "-m", "hydra/sweeper=optuna", "hydra.sweeper.n_trials=4",
                           "hydra.sweeper.n_jobs=2", "hydra.sweeper.study_name=fail", f"hydra.sweeper.storage={storage}",
                           f"hydra.sweep.dir={tmp_path / 'sweep'}",
                           f"hydra.sweeper.require_completed={str(require_completed).lower()}"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)
    reasons = [line.split("] ", 1)[1] for line in done.stdout.splitlines() if ": FAIL — " in line]
    assert reasons == [f"study 'fail' trial {n} (no params): FAIL — returned None, not a number" for n in range(4)]
    assert "4 jobs: 4 invalid" in done.stdout.splitlines()
    assert "study 'fail' has no completed trial yet" in done.stdout
    assert [t.state for t in trials_of(str(storage), "fail")] == [TrialState.FAIL] * 4
    results = OmegaConf.to_container(OmegaConf.load(tmp_path / "sweep" / "optimization_results.yaml"))
    assert results["trials_this_run"] == {"FAIL": 4}
    assert (results["best_params"], results["best_value"], results["best_trial"]) == (None, None, None)
    if require_completed:
        assert done.returncode == 1
        assert "no trials are completed yet in study 'fail'" in done.stderr
    else:
        assert done.returncode == 0, done.stderr[-3000:]
        assert done.stderr.count("Traceback") == 0


def test_grid_takes_the_points_before_a_ranges_stop(hydra_sweep_runner: Any, tmp_path: Path) -> None:
    for includes_stop, ys in ((False, (-1, 0)), (True, (-1, 0, 1))):
        storage = f"{tmp_path / f'grid{includes_stop}.journal'}"
        returns = sweep(hydra_sweep_runner, tmp_path, "hydra/sweeper/sampler=grid", f"hydra.sweeper.storage={storage}",
                        "x=choice(-1, 1)", "y=range(-1, 1)", "hydra.sweeper.n_trials=10",
                        *(["hydra.sweeper.grid_includes_stop=true"] if includes_stop else []))  # false: the default
        trials = trials_of(storage)
        assert len(trials) == 2 * len(ys)  # the grid's size, not n_trials
        assert {(t.params["x"], t.params["y"]) for t in trials} == {(x, y) for x in (-1, 1) for y in ys}
        assert returns["best_value"] == 1


def test_a_fixed_value_beats_a_search_of_the_same_key(hydra_sweep_runner: Any, tmp_path: Path,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    # x fixed in hydra.sweeper.params, searched on the command line: fixed (the plugin), or searched (last wins)
    for last_wins, xs in ((False, {5}), (True, {1, 2})):
        storage = f"{tmp_path / f'fixed{last_wins}.journal'}"
        sweep(hydra_sweep_runner, tmp_path, "hydra.sweeper.params.x=5", "x=choice(1, 2)", "y=0",
              "hydra.sweeper.n_trials=6", "hydra/sweeper/sampler=random", f"hydra.sweeper.storage={storage}",
              *(["hydra.sweeper.last_override_wins=true"] if last_wins else []))  # false: the default
        trials = trials_of(storage)
        assert {t.value for t in trials} == {x * x for x in xs}
        assert all(("x" in t.params) == last_wins for t in trials)
    assert caplog.text.count("x=choice(1, 2) is not searched: x=5 fixes it") == 1


@pytest.mark.parametrize("over", ["batch", "run"])
def test_failure_rate_per_batch_or_per_run(hydra_sweep_runner: Any, tmp_path: Path, capsys: Any, over: str) -> None:
    # 4 trials in batches of 2; trials 2 and 3 crash. Per batch (the plugin): the second batch is 2 of 2 > 0.5,
    # and the sweep ends with the job's own error. Per run: 2 of 4 is not above 0.5, and the sweep completes.
    overrides = ["hydra.sweeper.n_trials=4", "hydra.sweeper.n_jobs=2", "hydra/sweeper/sampler=random",
                 "hydra.sweeper.max_failure_rate=0.5", "+error_from_trial=2",
                 *([f"hydra.sweeper.failure_rate_over={over}"] if over == "run" else [])]  # batch: the default
    if over == "batch":
        with pytest.raises(RuntimeError, match="^cfg.error is True$"):
            sweep(hydra_sweep_runner, tmp_path, *overrides)
    else:
        returns = sweep(hydra_sweep_runner, tmp_path, *overrides)
        assert returns["trials_this_run"] == {"COMPLETE": 2, "FAIL": 2}
    # not swallowed: each crash is in the log (Hydra's console log, stdout) with its traceback
    log = capsys.readouterr().out
    assert log.count("the job crashed:\nTraceback (most recent call last)") == 2
    assert log.count('raise RuntimeError("cfg.error is True")\nRuntimeError: cfg.error is True') == 2
    if over == "batch":
        assert "2 of 2 trials of this batch crashed (100%), more than hydra.sweeper.max_failure_rate=0.5" in log


def test_nan_is_a_failed_trial_and_the_study_goes_on(hydra_sweep_runner: Any, tmp_path: Path, capsys: Any) -> None:
    from bn_study.sweep.space import as_override

    storage = str(tmp_path / "nan.journal")
    returns = sweep(hydra_sweep_runner, tmp_path, "+nan_above=0", "hydra.sweeper.n_trials=12",
                    "hydra/sweeper/sampler=random", "hydra.sweeper.sampler.seed=1", f"hydra.sweeper.storage={storage}")
    trials = trials_of(storage)
    assert len(trials) == 12  # max_failure_rate=0.0, yet NaN does not stop the study
    for t in trials:
        assert t.state == (TrialState.FAIL if t.params["x"] > 0 else TrialState.COMPLETE)
    assert {t.state for t in trials} == {TrialState.FAIL, TrialState.COMPLETE}
    assert returns["best_value"] == min(t.value for t in trials if t.state == TrialState.COMPLETE)
    assert returns["trials_this_run"] == {"FAIL": sum(t.state == TrialState.FAIL for t in trials),
                                          "COMPLETE": sum(t.state == TrialState.COMPLETE for t in trials)}
    # each diverged trial says why, in its own words, and nothing crashed
    said = [line.split("] ", 1)[1] for line in capsys.readouterr().out.splitlines() if ": FAIL" in line]
    assert said == [f"study 'sphere' trial {t.number} ({' '.join(as_override(k, v) for k, v in t.params.items())}): "
                    "FAIL — returned nan" for t in trials if t.state == TrialState.FAIL]


def test_a_bad_curve_is_pruned() -> None:
    # the job's side: three trials with good curves completed, a fourth reports a worse one
    study = optuna.create_study(pruner=optuna.pruners.MedianPruner(n_startup_trials=3), direction="maximize")
    for _ in range(3):
        trial = study.ask()
        for epoch in (1, 2, 3):
            trial.report(0.9 + epoch / 100, epoch)
        study.tell(trial, 0.93)
    good = TrialReporter(study.ask(), study.study_name, 3)
    good.report(1, 0.95)  # better than the median: goes on
    bad = TrialReporter(study.ask(), study.study_name, 4)
    with pytest.raises(optuna.TrialPruned, match="after epoch 1"):
        bad.report(1, 0.5)
    assert bad.tags() == {"optuna_study": study.study_name, "optuna_trial": "4", "stage": "tune"}


def test_pruned_trials_are_pruned_in_the_study(hydra_sweep_runner: Any, tmp_path: Path) -> None:
    # jobs report a 5-step curve per trial; those far above the median stop after their first step
    storage = str(tmp_path / "prune.journal")
    # random sampler, seed 2: x = 0.5, 0.5, 0.5, 4, 0.5, 0.5, 4, 4, 0.5, 0.5
    sweep(hydra_sweep_runner, tmp_path, "+curve=true", "hydra.sweeper.n_trials=10", "x=choice(0.5, 4)", "y=0",
          "hydra/sweeper/sampler=random", "hydra.sweeper.sampler.seed=2", "hydra.sweeper.pruner.n_startup_trials=2",
          f"hydra.sweeper.storage={storage}")
    trials = trials_of(storage)
    pruned = [t for t in trials if t.state == TrialState.PRUNED]
    assert [t.number for t in pruned] == [3, 6, 7], [(t.params, t.state) for t in trials]
    assert all(t.params["x"] == 4 and list(t.intermediate_values) == [1] for t in pruned)
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    assert all(list(t.intermediate_values) == [1, 2, 3, 4, 5] for t in complete)


def test_nop_pruner_prunes_nothing(hydra_sweep_runner: Any, tmp_path: Path) -> None:
    storage = str(tmp_path / "nop.journal")
    sweep(hydra_sweep_runner, tmp_path, "+curve=true", "hydra.sweeper.n_trials=6", "x=choice(0.5, 4)", "y=0",
          "hydra/sweeper/pruner=nop", f"hydra.sweeper.storage={storage}")
    assert {t.state for t in trials_of(storage)} == {TrialState.COMPLETE}


@pytest.mark.parametrize("storage_kind", ["journal", "sqlite"])
def test_rerunning_resumes_the_study(hydra_sweep_runner: Any, tmp_path: Path, storage_kind: str,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    storage = "runs.journal" if storage_kind == "journal" else "sqlite:///runs.db"
    monkeypatch.chdir(tmp_path)  # a relative storage lives in the launch directory
    for _ in range(2):
        sweep(hydra_sweep_runner, tmp_path, "hydra.sweeper.n_trials=4", f"hydra.sweeper.storage={storage}")
    assert [t.number for t in trials_of(str(tmp_path / storage) if storage_kind == "journal"
                                        else f"sqlite:///{tmp_path / 'runs.db'}")] == list(range(8))
    # the same study cannot change direction
    with pytest.raises(UserError, match="optimises minimize"):
        sweep(hydra_sweep_runner, tmp_path, "hydra.sweeper.n_trials=1", f"hydra.sweeper.storage={storage}",
              "hydra.sweeper.direction=maximize")


@pytest.mark.parametrize("storage_kind", ["sqlite", "journal"])
def test_two_processes_share_one_storage(tmp_path: Path, storage_kind: str) -> None:
    storage = f"sqlite:///{tmp_path / 'shared.db'}" if storage_kind == "sqlite" else str(tmp_path / "shared.journal")
    n = 6
    procs = []
    for i in range(2):
        cmd = [sys.executable, str(SPHERE_APP), "--multirun", f"hydra.sweep.dir={tmp_path / f'sweep{i}'}",
               f"hydra.sweeper.storage={storage}", "hydra.sweeper.study_name=shared", f"hydra.sweeper.n_trials={n}",
               "hydra/sweeper/sampler=random", "hydra.sweeper.sampler.seed=null", "hydra/sweeper/pruner=nop",
               "+curve=true"]  # jobs write intermediate values too, while the other process asks and tells
        procs.append(subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                      env={**os.environ, "HYDRA_FULL_ERROR": "1"}))
    outputs = [p.communicate(timeout=240) for p in procs]
    for p, (out, err) in zip(procs, outputs):
        assert p.returncode == 0, err[-3000:]
        assert "locked" not in err + out
    trials = trials_of(storage, "shared")
    assert sorted(t.number for t in trials) == list(range(2 * n))  # none lost, none twice
    assert all(t.state == TrialState.COMPLETE and len(t.intermediate_values) == 5 for t in trials)


def test_bad_settings_are_user_errors(hydra_sweep_runner: Any, tmp_path: Path) -> None:
    for override, message in (("hydra.sweeper.direction=up", "direction='up' is not allowed"),
                              ("hydra.sweeper.max_failure_rate=2", "max_failure_rate=2.0 is not allowed"),
                              ("hydra.sweeper.storage=optuna.db", "looks like a SQLite file")):
        with pytest.raises(Exception) as info:
            sweep(hydra_sweep_runner, tmp_path, override)
        error = info.value if isinstance(info.value, UserError) else info.value.__cause__
        assert isinstance(error, UserError) and message in str(error), repr(info.value)


def test_crash_traceback_survives_a_process_boundary() -> None:
    import pickle

    from hydra.core.utils import JobReturn, JobStatus

    from bn_study.sweep.trial_outcome import classify
    from hydra_plugins.bn_study_sweepers.optuna_sweeper import TracedTask

    def task(cfg: Any) -> float:
        raise ValueError("boom")

    try:
        TracedTask(task)(None)
    except ValueError as exc:
        sent = pickle.loads(pickle.dumps(exc))  # what a joblib worker sends back: no __traceback__
    ret = JobReturn(status=JobStatus.FAILED, _return_value=sent)
    outcome = classify(ret)
    assert outcome.state == TrialState.FAIL and outcome.is_failure
    assert "in task" in outcome.traceback and "ValueError: boom" in outcome.traceback


def test_outcomes() -> None:
    from hydra.core.utils import JobReturn, JobStatus

    from bn_study.sweep.outcome import JobOutcome
    from bn_study.sweep.trial_outcome import classify

    def done(value: Any) -> JobReturn:
        return JobReturn(status=JobStatus.COMPLETED, _return_value=value)

    assert classify(done(JobOutcome(0.97, "finished"))).values == [0.97]
    diverged = classify(done(JobOutcome(-math.inf, "diverged", "loss is nan at step 12")))
    assert (diverged.state, diverged.kind, diverged.detail) == (TrialState.FAIL, "diverged", "loss is nan at step 12")
    assert not diverged.is_failure  # a result about the hyperparameters, not a broken job
    assert classify(done(None)).kind == "invalid"
    pruned = classify(JobReturn(status=JobStatus.FAILED, _return_value=optuna.TrialPruned("after epoch 2")))
    assert pruned.state == TrialState.PRUNED and not pruned.is_failure
    assert classify(done([1.0, 2.0]), n_objectives=2).values == [1.0, 2.0]


def test_searches_started_in_the_same_second_get_their_own_sweep_dirs(tmp_path: Path) -> None:
    import socket

    from bn_study.sweep.sweep_dir import CLAIM_FILE, claim_sweep_dir

    base = tmp_path / "multirun" / "12-00-00"
    assert claim_sweep_dir(base) == base
    assert claim_sweep_dir(base) == base  # this process again (a re-run into the same dir): keeps it
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:  # a live search elsewhere holds it: the next one moves next door
        (base / CLAIM_FILE).write_text(f"{socket.gethostname()} {sleeper.pid}")
        assert claim_sweep_dir(base) == tmp_path / "multirun" / "12-00-00_1"
    finally:
        sleeper.kill()
        sleeper.wait()
    assert claim_sweep_dir(base) == base  # its process is gone: the dir is free again


def test_storage_settings_resolve_against_the_launch_directory(tmp_path: Path) -> None:
    import importlib.util

    from bn_study.sweep.storage import display, resolve_storage, with_installed_driver

    assert resolve_storage(None, tmp_path) is None
    assert resolve_storage("optuna.journal", tmp_path) == str(tmp_path / "optuna.journal")
    assert resolve_storage("sqlite:///optuna.db", tmp_path) == f"sqlite:///{tmp_path / 'optuna.db'}"
    assert resolve_storage("sqlite:////abs/o.db", tmp_path) == "sqlite:////abs/o.db"
    url = "postgresql://user:secret@db.example:5432/optuna"
    assert resolve_storage(url, tmp_path) == url  # any other URL: unchanged
    assert "secret" not in display(url)  # what the logs and the MLflow parent show
    # SQLAlchemy 2 reads postgresql:// as psycopg 3; with only psycopg2 installed, the URL still works
    only_psycopg2 = importlib.util.find_spec("psycopg") is None and importlib.util.find_spec("psycopg2") is not None
    assert with_installed_driver(url) == (url.replace("postgresql://", "postgresql+psycopg2://") if only_psycopg2
                                          else url)
    assert with_installed_driver("mysql+pymysql://u@h/db") == "mysql+pymysql://u@h/db"


def test_tpe_models_each_param_alone_by_default() -> None:
    from hydra.utils import instantiate

    from hydra_plugins.bn_study_sweepers.config import TPESamplerConf

    # a sampler config makes a factory: each study (one per arm) builds its own sampler
    assert instantiate(OmegaConf.structured(TPESamplerConf))()._multivariate is False  # the plugin's default
    assert instantiate(OmegaConf.structured(TPESamplerConf(multivariate=None)))()._multivariate is None


def test_cmaes_takes_a_starting_point_from_yaml() -> None:
    # a dict key such as x0 is set in a config file: Hydra cannot override a null dict from the command line
    from hydra.utils import instantiate

    from hydra_plugins.bn_study_sweepers.config import CmaEsSamplerConf

    conf = OmegaConf.merge(OmegaConf.structured(CmaEsSamplerConf), OmegaConf.create({"x0": {"x": 0.5}, "sigma0": 0.2}))
    sampler = instantiate(conf)()
    assert (sampler._x0, sampler._sigma0) == ({"x": 0.5}, 0.2)


EXAMPLES = Path(__file__).resolve().parent / "hydra_optuna_examples"


@pytest.mark.parametrize("override, message", [
    ("hydra.sweeper.custom_search_space=no_such_module.configure",
     "hydra.sweeper.custom_search_space='no_such_module.configure' cannot be loaded"),
    ("z=3", "hydra.sweeper.custom_search_space suggests z, which is fixed by the overrides (z=3); drop one"),
])
def test_custom_search_space_mistakes_are_said(tmp_path: Path, override: str, message: str) -> None:
    done = subprocess.run([sys.executable, "custom-search-space-objective.py", "--multirun",
                           f"hydra.sweep.dir={tmp_path}", "hydra.sweeper.n_trials=2", override],
                          cwd=EXAMPLES, capture_output=True, text=True, timeout=300)
    assert done.returncode == 1
    assert message in done.stderr, done.stderr[-2000:]


def test_custom_search_space_without_the_leading_dot(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "custom-search-space-objective.py", "--multirun",
                           f"hydra.sweep.dir={tmp_path}", "hydra.sweeper.n_trials=3",
                           "hydra.sweeper.custom_search_space=custom-search-space-objective.configure"],
                          cwd=EXAMPLES, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    best = OmegaConf.load(tmp_path / "optimization_results.yaml").best_params
    assert abs(best.x - best.z) <= 0.5 and 0 <= best["+w"] <= 1
