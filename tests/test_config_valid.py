"""The shipped configs still pass: every experiment, composed with Hydra's compose API for every job its sweep
will run (a grid's every combination; an Optuna search's every choice and bound per arm, and its final stage),
is accepted by the schema and by every value rule — and checking it writes nothing."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf

from bn_study.config.launcher import validate_launcher
from bn_study.config.rules import validate_config
from bn_study.config.sources import conf_dir
from bn_study.sweep.plan import SearchPlan

EXPERIMENTS = sorted(p.stem for p in (conf_dir() / "experiment").glob("*.yaml"))
VARIANTS = sorted(p.stem for p in (conf_dir() / "variant").glob("*.yaml"))
SEARCHES = sorted(p.stem for p in (conf_dir() / "hparams_search").glob("*.yaml"))


@pytest.fixture
def composer():
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        yield lambda overrides, hydra=False: compose("config", overrides=list(overrides), return_hydra_config=hydra)
    GlobalHydra.instance().clear()


def sweep_jobs(composer, base: list[str]) -> list[list[str]]:
    """The jobs a multirun of ``base`` runs, as the project's sweepers expand them."""
    sweeper = composer(base, hydra=True).hydra.sweeper
    target = sweeper._target_
    params = OmegaConf.to_container(sweeper.params, resolve=False) if sweeper.params is not None else {}
    if target.endswith("GridSweeper"):
        parsed = OverridesParser.create().parse_overrides([f"{k}={v}" for k, v in params.items()])
        return [[*base, *job] for batch in BasicSweeper.split_arguments(parsed, None) for job in batch]
    assert target.endswith("OptunaSweeper"), target
    sweeper = OmegaConf.to_container(sweeper, resolve=False)
    final = sweeper.get("final")
    plan = SearchPlan.build([], params, sweeper.get("arms"), list(sweeper.get("trial_overrides") or []),
                            None if final is None else list(final.get("overrides") or []))
    return [[*base, *job] for job, _ in plan.probes()]


def check_every_job(composer, base: list[str], launch: Path) -> int:
    jobs = sweep_jobs(composer, base)
    assert jobs
    for job in jobs:
        cfg = composer(job)
        validate_config(cfg, launch_dir=launch)
    validate_launcher(composer(base, hydra=True).hydra.launcher)
    assert list(launch.iterdir()) == [], "validating wrote something"
    return len(jobs)


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_every_job_of_every_experiment_composes_and_validates(composer, tmp_path, name):
    count = check_every_job(composer, [f"+experiment={name}"], tmp_path)
    sizes = {"bn_vs_none": 4, "bn_layers": 10, "adam_vs_bn": 4, "batch_size": 24, "book_ch3": 7}
    if name in sizes:
        assert count == sizes[name]


@pytest.mark.parametrize("name", SEARCHES)
def test_every_probe_of_each_search_composes_and_validates(composer, tmp_path, name):
    check_every_job(composer, [f"hparams_search={name}"], tmp_path)


@pytest.mark.parametrize("name", VARIANTS)
def test_every_variant_composes_and_validates(composer, tmp_path, name):
    validate_config(composer([f"+variant={name}", "batch_size=1", "shuffle=false", "epochs=3"]), launch_dir=tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_the_defaults_and_the_readme_grid_validate(composer, tmp_path):
    validate_config(composer([]), launch_dir=tmp_path)
    parsed = OverridesParser.create().parse_overrides(["norm=none,bn1,bn4", "act=sigmoid,relu"])
    jobs = [job for batch in BasicSweeper.split_arguments(parsed, None) for job in batch]
    assert len(jobs) == 6
    for job in jobs:
        validate_config(composer(job), launch_dir=tmp_path)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("launcher", ["joblib", "local", "slurm"])
def test_the_shipped_launchers_validate(composer, launcher):
    validate_launcher(composer([f"hydra/launcher={launcher}"], hydra=True).hydra.launcher)
