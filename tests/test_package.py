"""A built wheel works on its own, from any directory: it carries every config, Hydra composes from it, a grid
trains into the launch directory's MLflow store, and the report finds the shipped experiments and a user's own.

The wheel is built once per module from a copy of the working tree (what git would carry: tracked files and
untracked ones it does not ignore), so leftovers of an earlier in-tree build (``build/lib``) cannot hide a
file missing from the package. It is installed with ``pip install --target`` into a temporary directory and
every command runs in a subprocess with ``PYTHONPATH=<that directory>`` from another temporary directory,
outside the repository: the editable install (a meta-path finder that comes after ``sys.path``) cannot
shadow it, and nothing can be read from the checkout by accident — which each command first checks.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
SHIPPED = ("adam_vs_bn", "batch_size", "bn_layers", "bn_vs_none", "book_ch3", "fair_bn")
NOT_GIT = "not a git checkout"  # bn_study.tracking.provenance.NOT_GIT
QUICK = ("epochs=1", "data.limit_train=1000", "probe.samples=200")

# A user's own experiment, in a config directory of their own (Hydra's --config-dir DIR: DIR/experiment/NAME.yaml),
# built from the shipped groups.
MINE = """\
# @package _global_
defaults:
  - override /norm: bn2
batch_size: 64
tracking:
  experiment: mine
hydra:
  sweeper:
    params:
      act: relu
report:
  title: "my own question"
"""


def _tree_files(repo: Path) -> list[Path]:
    """The files a clone of the working tree would hold; without git, the ones a wheel is built from."""
    try:
        listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=repo,
                                capture_output=True, check=True, timeout=60).stdout.decode().split("\0")
        return [Path(f) for f in listed if f and (repo / f).is_file()]
    except (OSError, subprocess.SubprocessError):
        roots = [repo / "pyproject.toml", repo / "README.md", *(repo / d for d in ("bn_study", "hydra_plugins", "conf"))]
        files = [p for r in roots for p in ([r] if r.is_file() else r.rglob("*")) if p.is_file()]
        return [p.relative_to(repo) for p in files if "__pycache__" not in p.parts and ".egg-info" not in str(p)]


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    src = tmp_path_factory.mktemp("source")
    for rel in _tree_files(REPO):
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / rel, src / rel)
    return src


@pytest.fixture(scope="module")
def wheel(source, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w", str(out),
                            str(source)], capture_output=True, text=True, timeout=600)
    assert built.returncode == 0, built.stdout + built.stderr
    (found,) = out.glob("bn_study-*.whl")
    return found


@pytest.fixture(scope="module")
def target(wheel, tmp_path_factory) -> Path:
    """The wheel installed into a directory of its own, checked to be what ``import bn_study`` finds there."""
    where = tmp_path_factory.mktemp("site")
    done = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--target", str(where), str(wheel)],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    probe = ("import json, bn_study, hydra_plugins.bn_study_sweepers as s, bn_study.config.sources as c; "
             "print(json.dumps([bn_study.__file__, s.__file__, str(c.conf_dir())]))")
    shown = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path_factory.mktemp("probe"), env=_env(where),
                           capture_output=True, text=True, timeout=300)
    assert shown.returncode == 0, shown.stderr
    package, plugins, conf = (Path(p) for p in json.loads(shown.stdout.strip().splitlines()[-1]))
    for path in (package, plugins, conf):
        assert path.is_relative_to(where.resolve()) or path.is_relative_to(where), f"{path} is not the installed wheel's"
    assert (conf / "config.yaml").is_file()
    return where


@pytest.fixture(scope="module")
def launch(tmp_path_factory) -> Path:
    """Another directory, outside the repository and outside any git checkout."""
    where = tmp_path_factory.mktemp("launch")
    assert not where.resolve().is_relative_to(REPO)
    return where


@pytest.fixture(scope="module")
def user_conf(tmp_path_factory) -> Path:
    where = tmp_path_factory.mktemp("my_configs")
    (where / "experiment").mkdir()
    (where / "experiment" / "mine.yaml").write_text(MINE, encoding="utf-8")
    return where


def _env(target: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(target)  # the installed wheel only: not the checkout, not whatever was there
    env.setdefault("BN_STUDY_DATA", str(REPO / "data"))  # the real MNIST, never fetched (tests/conftest.py)
    env.pop("MLFLOW_TRACKING_URI", None)
    # git looks no higher than the temporary directories: their runs are from "not a git checkout", for sure
    env["GIT_CEILING_DIRECTORIES"] = str(Path(tempfile.gettempdir()).resolve())
    return env


def _run(target: Path, cwd: Path, *args: str, module: str = "bn_study") -> subprocess.CompletedProcess[str]:
    done = subprocess.run([sys.executable, "-m", module, *args], cwd=cwd, env=_env(target), capture_output=True,
                          text=True, timeout=600)
    return done


def _ok(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 0, f"exit {done.returncode}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout


def test_the_wheel_carries_every_config_and_every_module(wheel, source):
    names = set(zipfile.ZipFile(wheel).namelist())
    configs = {f"bn_study/conf/{p.relative_to(source / 'conf').as_posix()}" for p in (source / "conf").rglob("*.yaml")}
    assert {"bn_study/conf/config.yaml", "bn_study/conf/experiment/bn_vs_none.yaml"} <= configs
    missing = sorted(configs - names)
    assert not missing, f"the wheel lacks {len(missing)} of {len(configs)} YAML files under conf/, e.g. {missing[:3]}"
    modules = {p.relative_to(source).as_posix() for d in ("bn_study", "hydra_plugins") for p in (source / d).rglob("*.py")}
    missing = sorted(modules - names)
    assert not missing, (f"the wheel lacks {missing}: add their packages to [tool.setuptools] packages in "
                         "pyproject.toml")


def test_job_config_composes_from_another_directory(target, launch):
    cfg = yaml.safe_load(_ok(_run(target, launch, "--cfg", "job")))
    assert (cfg["batch_size"], cfg["epochs"], cfg["model"]["hidden"]) == (128, 10, [512, 256, 128, 64])
    # the console script of the user's report, too
    script = next(p for p in (target / "bin" / "bn-study", target / "Scripts" / "bn-study.exe") if p.exists())
    done = subprocess.run([str(script), "--cfg", "job"], cwd=launch, env=_env(target), capture_output=True, text=True,
                          timeout=600)
    assert yaml.safe_load(_ok(done))["batch_size"] == 128


def test_shipped_experiment_and_search_compose(target, launch):
    cfg = yaml.safe_load(_ok(_run(target, launch, "+experiment=bn_vs_none", "--cfg", "job")))
    assert cfg["tracking"]["experiment"] == "bn_vs_none" and cfg["seeds"] == [0, 1, 2, 3, 4]
    hydra = yaml.safe_load(_ok(_run(target, launch, "hparams_search=optuna", "--cfg", "hydra")))["hydra"]
    assert hydra["sweeper"]["_target_"] == "hydra_plugins.bn_study_sweepers.optuna_sweeper.OptunaSweeper"


def _sweep(launch: Path, experiment: str) -> tuple[object, list[object]]:
    from mlflow import MlflowClient

    client = MlflowClient(f"sqlite:///{launch / 'mlflow.db'}")
    found = client.get_experiment_by_name(experiment)
    assert found is not None, f"no MLflow experiment {experiment!r} in {launch / 'mlflow.db'}"
    runs = client.search_runs([found.experiment_id])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(parents) == 1, [r.info.run_name for r in runs]
    assert all(r.data.tags["mlflow.parentRunId"] == parents[0].info.run_id for r in children)
    for r in children:
        assert r.info.status == "FINISHED", (r.info.run_name, r.data.tags.get("failure_reason"))
        assert [m.step for m in client.get_metric_history(r.info.run_id, "val_acc")] == [1]
    for r in runs:  # provenance from the launch directory, which is no git checkout (nor is the wheel's)
        assert r.data.tags.get("git_commit") == NOT_GIT, r.data.tags.get("git_commit")
    return parents[0], children


def test_a_grid_trains_into_the_launch_directory(target, launch):
    _ok(_run(target, launch, "-m", "norm=none,bn1", *QUICK))
    _, children = _sweep(launch, "bn_study")
    assert sorted(r.data.tags.get("condition", r.info.run_name) for r in children) == [
        "data.limit_train=1000 epochs=1", "norm=bn1 data.limit_train=1000 epochs=1"]


def test_a_users_config_dir_adds_an_experiment(target, launch, user_conf):
    cfg = yaml.safe_load(_ok(_run(target, launch, "--config-dir", str(user_conf), "+experiment=mine", "--cfg", "job")))
    assert (cfg["tracking"]["experiment"], cfg["batch_size"], cfg["norm"]["layers"]) == ("mine", 64, 2)
    _ok(_run(target, launch, "-m", "--config-dir", str(user_conf), "+experiment=mine", *QUICK))
    _, children = _sweep(launch, "mine")
    assert [r.data.params["batch_size"] for r in children] == ["64"]
    # and its report reads the user's file (its title) from there
    out = _ok(_run(target, launch, "--config-dir", str(user_conf), "mine", "--no-artifacts", module="bn_study.report"))
    readme = Path(launch / out.split("mine: ", 1)[1].splitlines()[0].strip())
    assert "my own question" in readme.read_text(encoding="utf-8").splitlines()[0]


def _listed(stdout: str) -> dict[str, Path]:
    return {name: Path(path) for name, path in (line.split(None, 1) for line in stdout.splitlines() if line.strip())}


def test_the_report_lists_shipped_experiments_and_a_users_own(target, launch, user_conf):
    shipped = _listed(_ok(_run(target, launch, "--list", module="bn_study.report")))
    assert set(SHIPPED) <= set(shipped) and "mine" not in shipped
    assert all(p.is_relative_to(target) for p in shipped.values()), shipped
    both = _listed(_ok(_run(target, launch, "--list", "--config-dir", str(user_conf), module="bn_study.report")))
    assert both["mine"] == user_conf / "experiment" / "mine.yaml"
    assert {k: v for k, v in both.items() if k != "mine"} == shipped


# In process (the same code as installed, from the checkout): the search order and the CLI's mistakes.

def test_config_dirs_are_searched_in_order_before_the_shipped_ones(tmp_path, capsys):
    from bn_study.config.sources import conf_dir
    from bn_study.report.__main__ import main
    from bn_study.report.load import experiment_dirs, load_spec

    first, second = tmp_path / "first", tmp_path / "second"
    for d, title in ((first, "first"), (second, "second")):
        (d / "experiment").mkdir(parents=True)
        (d / "experiment" / "bn_vs_none.yaml").write_text(f"report:\n  title: {title}\n", encoding="utf-8")
    (second / "experiment" / "only_second.yaml").write_text("report:\n  title: only\n", encoding="utf-8")
    dirs = experiment_dirs([first, second])
    assert dirs == (first / "experiment", second / "experiment", conf_dir() / "experiment")
    assert load_spec("bn_vs_none", dirs).title == "first"  # a user's file shadows the shipped one, as in Hydra
    assert load_spec("only_second", dirs).file == second / "experiment" / "only_second.yaml"
    assert load_spec("book_ch3", dirs).file == conf_dir() / "experiment" / "book_ch3.yaml"
    assert main(["--list", "--config-dir", str(first), "--config-dir", str(second)]) == 0
    listed = _listed(capsys.readouterr().out)
    assert listed["bn_vs_none"] == first / "experiment" / "bn_vs_none.yaml" and "only_second" in listed

    assert main(["--list", "--config-dir", str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "nowhere" in err and len(err.splitlines()) == 1
    with pytest.raises(SystemExit) as no_name:
        main([])
    assert no_name.value.code == 2


def test_the_editable_checkout_reads_its_own_conf_live():
    """From a checkout (editable install or PYTHONPATH), conf_dir() is the top-level conf/, not a copy."""
    import bn_study
    from bn_study.config.sources import conf_dir

    if not Path(bn_study.__file__).resolve().is_relative_to(REPO):
        pytest.skip(f"bn_study is imported from {bn_study.__file__}, not from this checkout")
    assert conf_dir() == REPO / "conf"
