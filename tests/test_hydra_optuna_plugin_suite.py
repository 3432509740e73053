"""Hydra's Optuna sweeper plugin's own test suite (facebookresearch/hydra,
plugins/hydra_optuna_sweeper/tests/test_optuna_sweeper_plugin.py), expectation by expectation, against this
project's sweeper: the plugin's example apps and test configs (tests/hydra_optuna_examples) run unchanged, in
real processes, as the plugin's suite runs them. Each test names the plugin's test it stands for."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import optuna
import pytest
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.plugins import Plugins
from hydra.errors import InstantiationException
from hydra.plugins.sweeper import Sweeper
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution

from bn_study.sweep.space import create_optuna_distribution_from_override, create_params_from_overrides
from hydra_plugins.bn_study_sweepers.config import MOTPESamplerConf
from hydra_plugins.bn_study_sweepers.optuna_sweeper import OptunaSweeper

EXAMPLES = Path(__file__).resolve().parent / "hydra_optuna_examples"


def run_example(*args: str) -> subprocess.CompletedProcess:
    """``python <app> --multirun …`` from the examples' root, as the plugin's suite runs its apps."""
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    return subprocess.run([sys.executable, *args], cwd=EXAMPLES, capture_output=True, text=True, timeout=600,
                          env=env)


def results(sweep_dir: Path) -> DictConfig:
    returns = OmegaConf.load(sweep_dir / "optimization_results.yaml")
    assert isinstance(returns, DictConfig)
    return returns


# test_discovery
def test_discovery() -> None:
    assert OptunaSweeper.__name__ in [x.__name__ for x in Plugins.instance().discover(Sweeper)]


def check_distribution(expected: BaseDistribution, actual: BaseDistribution) -> None:
    if not isinstance(expected, CategoricalDistribution):
        assert expected == actual
        return
    assert isinstance(actual, CategoricalDistribution)
    assert set(expected.choices) == set(actual.choices)  # shuffle() randomises the order


# test_create_optuna_distribution_from_override (10 cases)
@pytest.mark.parametrize("text, expected", [
    ("key=choice(1,2)", CategoricalDistribution([1, 2])),
    ("key=choice(true, false)", CategoricalDistribution([True, False])),
    ("key=choice('hello', 'world')", CategoricalDistribution(["hello", "world"])),
    ("key=shuffle(range(1,3))", CategoricalDistribution((1, 2))),
    ("key=range(1,3)", IntDistribution(1, 3)),
    ("key=interval(1, 5)", FloatDistribution(1, 5)),
    ("key=int(interval(1, 5))", IntDistribution(1, 5)),
    ("key=tag(log, interval(1, 5))", FloatDistribution(1, 5, log=True)),
    ("key=tag(log, int(interval(1, 5)))", IntDistribution(1, 5, log=True)),
    ("key=range(0.5, 5.5, step=1)", FloatDistribution(0.5, 5.5, step=1)),
])
def test_create_optuna_distribution_from_override(text: str, expected: BaseDistribution) -> None:
    parsed = OverridesParser.create().parse_overrides([text])[0]
    check_distribution(expected, create_optuna_distribution_from_override(parsed))


def test_a_fixed_override_gives_its_value_as_written() -> None:
    parsed = OverridesParser.create().parse_overrides(["key=5"])[0]
    assert create_optuna_distribution_from_override(parsed) == "5"


# test_create_params_from_overrides (6 cases): (space, fixed values as written, deletions as written)
@pytest.mark.parametrize("arguments, expected", [
    (["key=choice(1,2)"], ({"key": CategoricalDistribution([1, 2])}, {}, [])),
    (["key=5"], ({}, {"key": "5"}, [])),
    (["key1=choice(1,2)", "key2=5"], ({"key1": CategoricalDistribution([1, 2])}, {"key2": "5"}, [])),
    (["key1=choice(1,2)", "key2=5", "key3=range(1,3)"],
     ({"key1": CategoricalDistribution([1, 2]), "key3": IntDistribution(1, 3)}, {"key2": "5"}, [])),
    (["~z"], ({}, {}, ["~z"])),
    (["~z=10"], ({}, {}, ["~z=10"])),
])
def test_create_params_from_overrides(arguments: list[str], expected: tuple) -> None:
    assert create_params_from_overrides(arguments) == expected


# test_launch_jobs
def test_launch_jobs(hydra_sweep_runner: Any, tmp_path: Path) -> None:
    with hydra_sweep_runner(calling_file=None, calling_module="hydra.test_utils.a_module", config_path="configs",
                            config_name="compose.yaml", task_function=None, temp_dir=str(tmp_path),
                            overrides=["hydra/sweeper=optuna", "hydra/launcher=basic", "hydra.sweeper.n_trials=8",
                                       "hydra.sweeper.n_jobs=3"]) as sweep:
        assert sweep.returns is None


# test_optuna_example (with and without the command line)
@pytest.mark.parametrize("with_commandline", (True, False))
def test_optuna_example(with_commandline: bool, tmp_path: Path) -> None:
    storage = f"sqlite:///{tmp_path / 'test.db'}"
    cmd = ["sphere.py", "--multirun", f"hydra.sweep.dir={tmp_path}", "hydra.job.chdir=True",
           "hydra.sweeper.n_trials=20", "hydra.sweeper.n_jobs=1", f"hydra.sweeper.storage={storage}",
           "hydra.sweeper.study_name=test-optuna-example", "hydra/sweeper/sampler=tpe",
           "hydra.sweeper.sampler.seed=123", "~z"]
    if with_commandline:
        cmd += ["x=choice(0, 1, 2)", "y=0"]  # y: a fixed parameter
    done = run_example(*cmd)
    assert done.returncode == 0, done.stderr[-3000:]
    returns = results(tmp_path)
    best_trial = optuna.load_study(storage=storage, study_name="test-optuna-example").best_trial
    assert returns.name == "optuna"
    assert returns["best_params"]["x"] == best_trial.params["x"]
    if with_commandline:
        assert "y" not in returns["best_params"]
        assert "y" not in best_trial.params
    else:
        assert returns["best_params"]["y"] == best_trial.params["y"]
    assert returns["best_value"] == best_trial.value
    # the plugin's threshold: the 95th percentile of TPE's best value over 1000 seeds
    assert returns["best_value"] <= 2.27


# test_example_with_grid_sampler (10 trials and 1)
@pytest.mark.parametrize("num_trials", (10, 1))
def test_example_with_grid_sampler(tmp_path: Path, num_trials: int) -> None:
    storage = f"sqlite:///{tmp_path / 'test.db'}"
    done = run_example("sphere.py", "--multirun", "--config-dir=plugin_conf", "--config-name=test_grid",
                       f"hydra.sweep.dir={tmp_path}", "hydra.job.chdir=False", f"hydra.sweeper.n_trials={num_trials}",
                       "hydra.sweeper.n_jobs=1", f"hydra.sweeper.storage={storage}",
                       "hydra.sweeper.study_name=test-grid-sampler", "hydra.sweeper.sampler.seed=123")
    assert done.returncode == 0, done.stderr[-3000:]
    returns = results(tmp_path)
    bv, bx, by, bz = (returns["best_value"], returns["best_params"]["x"], returns["best_params"]["y"],
                      returns["best_params"]["z"])
    if num_trials >= 12:
        assert bv == 1 and abs(bx) == 1 and by == 0
    else:
        assert bx in [-1, 1] and by in [-1, 0]
    assert bz in ["foo", "bar"]
    # the grid: 2 x 2 (range(-1.0, 1.0, step=1): the points before its stop) x 2 = 8 points, so at most 8 trials
    trials = optuna.load_study(storage=storage, study_name="test-grid-sampler").trials
    assert len(trials) == min(num_trials, 8)
    assert {t.params["y"] for t in trials} <= {-1.0, 0.0}


def _dominates(values_x: Any, values_y: Any) -> bool:
    return all(x <= y for x, y in zip(values_x, values_y)) and any(x < y for x, y in zip(values_x, values_y))


# test_optuna_multi_objective_example (with and without the command line)
@pytest.mark.parametrize("with_commandline", (True, False))
def test_optuna_multi_objective_example(with_commandline: bool, tmp_path: Path) -> None:
    cmd = ["multi-objective.py", "--multirun", f"hydra.sweep.dir={tmp_path}", "hydra.job.chdir=True",
           "hydra.sweeper.n_trials=20", "hydra.sweeper.n_jobs=1", "hydra/sweeper/sampler=random",
           "hydra.sweeper.sampler.seed=123"]
    if with_commandline:
        cmd += ["x=range(0, 5)", "y=range(0, 3)"]
    done = run_example(*cmd)
    assert done.returncode == 0, done.stderr[-3000:]
    returns = results(tmp_path)
    assert returns.name == "optuna"
    assert len(returns["solutions"]) > 0
    allowed = {0} if with_commandline else {0, 0.5}
    for trial_x in returns["solutions"]:
        assert trial_x["params"]["x"] % 1 in allowed
        assert trial_x["params"]["y"] % 1 in allowed
        for trial_y in returns["solutions"]:  # the trials must not dominate each other
            assert not _dominates(trial_x["values"], trial_y["values"])


# test_optuna_custom_search_space_example
def test_optuna_custom_search_space_example(tmp_path: Path) -> None:
    max_z_difference_from_x = 0.3
    storage = f"sqlite:///{tmp_path / 'test.db'}"
    done = run_example("custom-search-space-objective.py", "--multirun", f"hydra.sweep.dir={tmp_path}",
                       "hydra.job.chdir=True", "hydra.sweeper.n_trials=20", "hydra.sweeper.n_jobs=1",
                       "hydra/sweeper/sampler=random", "hydra.sweeper.sampler.seed=123",
                       f"hydra.sweeper.storage={storage}", f"max_z_difference_from_x={max_z_difference_from_x}")
    assert done.returncode == 0, done.stderr[-3000:]
    returns = results(tmp_path)
    assert returns.name == "optuna"
    assert abs(returns["best_params"]["x"] - returns["best_params"]["z"]) <= max_z_difference_from_x
    w = returns["best_params"]["+w"]
    assert 0 <= w <= 1
    # every trial, not only the best: z near x, w drawn, the fixed value recorded for the function to see
    trials = optuna.load_study(storage=storage, study_name="custom-search-space").trials
    assert len(trials) == 20
    for trial in trials:
        assert abs(trial.params["x"] - trial.params["z"]) <= max_z_difference_from_x
        assert 0 <= trial.params["+w"] <= 1
        assert trial.user_attrs["max_z_difference_from_x"] == "0.3"
        assert trial.value == pytest.approx(trial.params["+w"] ** 2 + trial.params["x"] ** 2
                                            + trial.params["y"] ** 2 + trial.params["z"] ** 2)


# test_failure_rate (0.5 and 1.0)
@pytest.mark.parametrize("max_failure_rate", (0.5, 1.0))
def test_failure_rate(max_failure_rate: float, tmp_path: Path) -> None:
    done = run_example("sphere.py", "--multirun", f"hydra.sweep.dir={tmp_path}", "hydra.job.chdir=True",
                       "hydra.sweeper.n_trials=20", "hydra.sweeper.n_jobs=2", "hydra/sweeper/sampler=random",
                       "hydra.sweeper.sampler.seed=123", f"hydra.sweeper.max_failure_rate={max_failure_rate}",
                       "error=true")
    error_string = "RuntimeError: cfg.error is True"
    if max_failure_rate < 1.0:  # the first batch crashes 2 of 2: the job's own error ends the sweep
        assert error_string in done.stderr
    else:  # every trial crashes and the sweep goes on, to "no trials are completed yet"
        assert error_string not in done.stderr
        assert "no trials are completed yet" in done.stderr.lower()
    assert done.returncode == 1  # as the plugin: an error in both cases
    assert done.stdout.count("the job crashed:\nTraceback") == (2 if max_failure_rate < 1.0 else 20)


# test_motpe_sampler_removed
def test_motpe_sampler_removed() -> None:
    with pytest.raises(InstantiationException, match="The 'motpe' sampler was removed in Optuna 4.0"):
        instantiate(OmegaConf.structured(MOTPESamplerConf))


# test_example_with_removed_motpe
def test_example_with_removed_motpe(tmp_path: Path) -> None:
    done = run_example("multi-objective.py", "--multirun", "--config-dir=plugin_conf", "--config-name=test_motpe",
                       f"hydra.sweep.dir={tmp_path}", "hydra.job.chdir=True", "hydra.sweeper.n_trials=20",
                       "hydra.sweeper.n_jobs=1")
    assert done.returncode != 0
    assert "motpe" in done.stderr
    assert "sampler was removed in Optuna 4.0" in done.stderr
    assert not (tmp_path / "optimization_results.yaml").exists()


# Beyond the suite: the same seed gives the plugin's trials. A search the plugin runs asks a batch of n_jobs
# trials, suggests the space's params in the order they were written, then tells the batch; replaying that loop
# with the plugin's sampler defaults (TPE multivariate=false) must give exactly the trials this sweeper ran.
# RECORDED: the plugin's own trials (HEAD, on Optuna 5.0.0), run beside this sweeper on these apps.
RECORDED = {
    ("tpe", 1): [(2.5, 5), (2.5, 0), (0.0, 5), (-0.5, 5), (-3.5, 5), (1.5, -5), (2.5, 0), (-2.5, -5), (-1.0, -5),
                 (-1.0, 0), (5.5, 0), (5.0, 0), (-5.0, 0), (3.5, 0), (1.0, 0), (-2.0, 0), (0.5, 0), (-4.0, 0),
                 (-1.5, 0), (1.0, -5)],
    ("tpe", 2): [(2.5, 5), (2.5, 0), (0.0, 5), (-0.5, 5), (-3.5, 5), (1.5, -5), (2.5, 0), (-2.5, -5), (-1.0, -5),
                 (-1.0, 0), (5.5, 0), (-5.0, 0), (5.0, 0), (3.5, 0), (1.0, 0), (-2.0, 0), (0.5, 0), (-5.5, 0),
                 (0.5, 0), (-1.5, -5)],
    ("random", 1): [(2.5, 5), (2.5, 0), (0.0, 5), (-0.5, 5), (-3.5, 5)],
}


def plugin_replay(sampler: optuna.samplers.BaseSampler, n_trials: int, n_jobs: int) -> list[tuple]:
    space = {"x": FloatDistribution(-5.5, 5.5, step=0.5), "y": CategoricalDistribution([-5, 0, 5])}
    study = optuna.create_study(sampler=sampler)
    drawn = []
    while len(drawn) < n_trials:
        batch = [study.ask() for _ in range(min(n_jobs, n_trials - len(drawn)))]
        for trial in batch:
            for name, distribution in space.items():
                trial._suggest(name, distribution)
        for trial in batch:
            study.tell(trial, trial.params["x"] ** 2 + trial.params["y"] ** 2)
            drawn.append((trial.params["x"], trial.params["y"]))
    return drawn


@pytest.mark.parametrize("sampler, n_jobs", [("tpe", 1), ("tpe", 2), ("random", 1)])
def test_the_same_seed_gives_the_plugins_trials(tmp_path: Path, sampler: str, n_jobs: int) -> None:
    storage = f"sqlite:///{tmp_path / 'test.db'}"
    n_trials = 20 if sampler == "tpe" else 5
    done = run_example("sphere.py", "--multirun", f"hydra.sweep.dir={tmp_path}", f"hydra/sweeper/sampler={sampler}",
                       "hydra.sweeper.sampler.seed=123", f"hydra.sweeper.n_trials={n_trials}",
                       f"hydra.sweeper.n_jobs={n_jobs}", f"hydra.sweeper.storage={storage}",
                       "hydra.sweeper.study_name=same")
    assert done.returncode == 0, done.stderr[-3000:]
    trials = optuna.load_study(storage=storage, study_name="same").trials
    ran = [(t.params["x"], t.params["y"]) for t in trials]
    make = {"tpe": lambda: optuna.samplers.TPESampler(seed=123, multivariate=False),
            "random": lambda: optuna.samplers.RandomSampler(seed=123)}[sampler]
    assert ran == plugin_replay(make(), n_trials, n_jobs)
    if optuna.__version__.startswith("5.0."):  # where the plugin's own run was recorded
        assert ran == RECORDED[(sampler, n_jobs)]
    best = results(tmp_path)
    assert best["best_value"] == min(x * x + y * y for x, y in ran)
