"""The typed schema: wired the Hydra way (the primary schema first in conf/config.yaml's defaults list, the
per-choice schemas named by their group files), light to import, and every shipped group file fits it; a
user's own config file with a wrong type is refused at composition, naming the file, the key and the value."""

from __future__ import annotations

import subprocess
import sys

import pytest
import yaml
from hydra import compose, initialize_config_dir
from hydra.core.config_store import ConfigStore
from hydra.core.global_hydra import GlobalHydra
from omegaconf import OmegaConf

from bn_study.config import schema
from bn_study.config.sources import conf_dir

GROUPS = ("model", "act", "norm", "optimizer", "loss", "data")


@pytest.fixture
def composer():
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        yield lambda *overrides: compose("config", overrides=list(overrides))
    GlobalHydra.instance().clear()


def test_the_schema_module_imports_nothing_heavy():
    code = ("import sys, bn_study.config.schema; "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'mlflow', 'optuna', 'numpy'}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_the_primary_schema_comes_first_in_the_defaults_list():
    defaults = yaml.safe_load((conf_dir() / "config.yaml").read_text())["defaults"]
    assert defaults[0] == schema.PRIMARY
    assert ConfigStore.instance().load(f"{schema.PRIMARY}.yaml").node is not None


def test_the_composed_config_is_typed(composer):
    cfg = composer()
    assert OmegaConf.get_type(cfg) is schema.Config
    assert OmegaConf.get_type(cfg.model) is schema.ModelConf
    assert OmegaConf.get_type(cfg.tracking) is schema.TrackingConf
    assert OmegaConf.is_dict(cfg.optimizer) and "_target_" in cfg.optimizer  # open: the optimizer's own keywords


@pytest.mark.parametrize("choice, typed", [
    ("act=sigmoid", schema.ActConf), ("act=leaky_relu", schema.LeakyReluActConf),
    ("norm=none", schema.NormConf), ("norm=bn1", schema.BatchNormConf), ("norm=bn4", schema.BatchNormConf),
    ("norm=ln", schema.LayerNormConf),
])
def test_each_choice_merges_into_its_own_schema(composer, choice, typed):
    group = choice.split("=")[0]
    assert OmegaConf.get_type(composer(choice)[group]) is typed


@pytest.mark.parametrize("group, name", [(g, p.stem) for g in GROUPS for p in sorted((conf_dir() / g).glob("*.yaml"))])
def test_every_shipped_group_file_fits_the_schema(composer, group, name):
    cfg = composer(f"{group}={name}")
    assert cfg[group] is not None


def test_the_schema_does_not_change_what_a_shipped_config_holds(composer):
    """Runs keep their config hash: composed, a shipped config holds exactly its YAML's keys (plus `report`)."""
    cfg = OmegaConf.to_container(composer("act=relu", "norm=bn1"), resolve=False)
    assert set(cfg["act"]) == {"name"}
    assert set(cfg["norm"]) == {"kind", "layers", "position", "eps", "momentum"}
    assert cfg["report"] is None


def test_report_sections_stay_free_form(composer):
    cfg = composer("+experiment=bn_vs_none")
    assert cfg.report.claims[0].id


@pytest.fixture
def my_conf(tmp_path_factory):
    conf = tmp_path_factory.mktemp("my_conf")
    for group in ("experiment", "norm", "act"):
        (conf / group).mkdir()
    (conf / "experiment" / "typo.yaml").write_text("# @package _global_\nepochs: ten\n")
    (conf / "norm" / "bn_mine.yaml").write_text("kind: batch\nlayers: 1\nposition: after\neps: 0.001\nmomentum: 0.1\n")
    (conf / "act" / "leaky_mine.yaml").write_text(
        "defaults:\n  - /schema/act/leaky_relu@_here_\n  - _self_\nname: leaky_relu\nnegative_slope: steep\n")
    return conf


@pytest.mark.parametrize("choice, fragments", [
    ("+experiment=typo", ["experiment/typo.yaml", "epochs='ten'", "a whole number"]),
    ("norm=bn_mine", ["norm/bn_mine.yaml", "norm.eps", "/schema/norm/batch@_here_"]),
    ("act=leaky_mine", ["act/leaky_mine.yaml", "act.negative_slope='steep'", "a number"]),
])
def test_a_users_own_file_with_a_wrong_type_is_refused(cli, tmp_path, my_conf, choice, fragments):
    result = cli("--config-dir", str(my_conf), choice, "data.limit_train=512", "epochs=1")
    assert result.code == 2, result.err
    assert result.err.count("\n") == 1 and "Traceback" not in result.err
    for fragment in fragments:
        assert fragment in result.err
    assert list(tmp_path.iterdir()) == []


def test_a_users_own_bn_file_that_names_its_schema_trains(cli, tmp_path, tmp_path_factory):
    conf = tmp_path_factory.mktemp("my_bn")
    (conf / "norm").mkdir()
    (conf / "norm" / "bn_fast.yaml").write_text(
        "defaults:\n  - /schema/norm/batch@_here_\n  - _self_\nkind: batch\nlayers: 2\nposition: before\n"
        "eps: 0.001\nmomentum: 0.1\n")
    result = cli("--config-dir", str(conf), "norm=bn_fast", "--cfg", "job")
    assert result.code == 0, result.err
    assert "momentum: 0.1" in result.out and "position: before" in result.out
