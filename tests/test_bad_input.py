"""Every mistake a user can make on the command line: one sentence naming the key, the value and what is
allowed, exit code 2, no traceback, and nothing written — no MLflow database or lock, no run, sweep or
checkpoint directory, no Optuna journal: the launch directory stays empty.

The cases run through the real entry point in this process (``cli``); ``test_the_real_process_*`` runs
one case of every class as a real ``python -m bn_study`` process, for its exit code and its stderr.
``QUICK`` keeps anything wrongly accepted short."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

QUICK = ("data.limit_train=512", "epochs=1")
OPTUNA = ("hparams_search=optuna", "hydra.sweeper.n_trials=1", "hydra.sweeper.final=null")

# class -> case -> (overrides, fragments the one sentence must hold)
CASES: dict[str, dict[str, tuple[list[str], list[str]]]] = {
    "wrong type": {
        "bool shuffle": (["shuffle=maybe"], ["shuffle=maybe", "true or false"]),
        "bool drop_last": (["drop_last=maybe"], ["drop_last=maybe", "true or false"]),
        "bool final_test": (["final_test=maybe"], ["final_test=maybe", "true or false"]),
        "bool tracking.figures": (["tracking.figures=maybe"], ["tracking.figures=maybe", "true or false"]),
        "bool probe.enabled": (["probe.enabled=perhaps"], ["probe.enabled=perhaps", "true or false"]),
        "bool given a number": (["shuffle=5"], ["shuffle=5 is not allowed", "true or false"]),
        "bool given 0": (["tracking.figures=0"], ["tracking.figures=0 is not allowed", "true or false"]),
        "int epochs": (["epochs=abc"], ["epochs=abc", "a whole number"]),
        "int from a float": (["batch_size=12.5"], ["batch_size=12.5", "a whole number"]),
        "optional int": (["model.show_record=abc"], ["model.show_record=abc", "a whole number, or null"]),
        "optional int in the probe": (["probe.every_steps=1.5"], ["probe.every_steps=1.5", "a whole number, or null"]),
        "not optional": (["log_every=null"], ["log_every=null", "a whole number, not null"]),
        "float": (["tracking.retry_seconds=abc"], ["tracking.retry_seconds=abc", "a number"]),
        "float in a group": (["norm=bn1", "norm.eps=tiny"], ["norm.eps=tiny", "a number"]),
        "list given a number": (["model.hidden=512"], ["model.hidden=512", "a list of whole numbers"]),
        "list element": (["model.hidden=[512,wide]"], ["model.hidden=[512,wide]", "model.hidden[1]", "a whole number"]),
        "optional list": (["seeds=5"], ["seeds=5", "a list of whole numbers", "or null"]),
        "list of strings": (["data.sources=local"], ["data.sources=local", "a list of strings"]),
        "a group given a value": (["tracking=abc"], ["tracking=abc", "a group of keys"]),
        "a key this choice lacks": (["act=relu", "act.negative_slope=0.1"],
                                    ["act.negative_slope=0.1", "no key negative_slope", "act=leaky_relu"]),
        "a key no config has": (["epoch=3"], ["epoch=3", "no key epoch", "epochs"]),
        "unknown group choice": (["norm=bn9"], ["norm/bn9", "bn1", "bn4", "ln", "none"]),
        "malformed override": (["norm=[bn1"], ["norm=[bn1"]),
    },
    "string choice": {
        "act.name": (["act.name=gelu"], ["act.name='gelu'", "sigmoid, relu, leaky_relu, tanh"]),
        "model.head": (["model.head=tanh"], ["model.head='tanh'", "softmax, sigmoid, leaky_relu"]),
        "norm.kind": (["norm.kind=group"], ["norm.kind='group'", "none, batch, layer"]),
        "norm.position": (["norm=bn1", "norm.position=middle"], ["norm.position='middle'", "after, before"]),
        "loss.name": (["loss.name=hinge"], ["loss.name='hinge'", "ce, mse, bce"]),
        "data.name": (["data.name=cifar"], ["data.name='cifar'", "mnist, fashion_mnist"]),
        "data.val": (["data.val=train"], ["data.val='train'", "test, holdout"]),
        "data.sources": (["data.sources=[local,ftp]"], ["data.sources=['local', 'ftp']", "local, torchvision, pypi"]),
        "no data source": (["data.sources=[]"], ["data.sources=[] is not allowed", "a non-empty list of: local"]),
        "engine": (["engine=turbo"], ["engine='turbo'", "auto, eager, graph, compile"]),
        "objective.metric": (["objective.metric=f1"], ["objective.metric='f1'", "val_acc"]),
        "objective.direction": (["objective.direction=up"], ["objective.direction='up'", "minimize, maximize"]),
        "progress": (["progress=maybe"], ["progress='maybe'", "auto, true or false"]),
        "resume": (["resume=sometimes"], ["resume='sometimes'", "auto, true or false"]),
        "threads": (["threads=many"], ["threads='many'", "auto or a whole number from 1 to"]),
        "device": (["device=tpu"], ["device='tpu'", "auto, cpu, cuda or cuda:N"]),
    },
    "out of range": {
        "batch_size < 1": (["batch_size=0"], ["batch_size=0", ">= 1"]),
        "batch_size > train size": (["data.limit_train=null", "batch_size=60001"], ["batch_size=60001", "1..60000"]),
        "batch_size > limited train size": (["batch_size=600", "data.limit_train=500"], ["batch_size=600", "1..500"]),
        "epochs < 1": (["epochs=0"], ["epochs=0", ">= 1"]),
        "log_every < 1": (["log_every=0"], ["log_every=0", ">= 1"]),
        "seed < 0": (["seed=-1"], ["seed=-1", "from 0 to"]),
        "seeds with a negative": (["seeds=[0,-1]"], ["seeds=[0, -1]", ">= 0"]),
        "seeds with a repeat": (["seeds=[0,0]"], ["seeds=[0, 0]", "once"]),
        "seeds empty": (["seeds=[]"], ["seeds=[]", "non-empty"]),
        "limit_train < 1": (["data.limit_train=0"], ["data.limit_train=0", ">= 1"]),
        "max_steps < 1": (["max_steps=0"], ["max_steps=0", ">= 1", "or null"]),
        "limit_train beyond the data": (["data.limit_train=70000"], ["data.limit_train=70000", "1..60000"]),
        "limit_train beyond the holdout split": (["data.val=holdout", "data.limit_train=55000"],
                                                 ["data.limit_train=55000", "1..50000"]),
        "hidden width 0": (["model.hidden=[512,0]"], ["model.hidden=[512, 0]", ">= 1"]),
        "hidden empty": (["model.hidden=[]"], ["model.hidden=[]", "non-empty"]),
        "show_record past the test set": (["model=book", "loss=bce", "model.show_record=99999"],
                                          ["model.show_record=99999", "from 0 to 9999"]),
        "show_record negative": (["model.show_record=-1"], ["model.show_record=-1", "from 0 to 9999"]),
        "probe.samples 0": (["probe.samples=0"], ["probe.samples=0", "from 1 to 10000"]),
        "probe.samples negative": (["probe.samples=-1"], ["probe.samples=-1", "from 1 to 10000"]),
        "probe.samples past the validation set": (["probe.samples=10001"], ["probe.samples=10001", "from 1 to 10000"]),
        "probe.every_steps negative": (["probe.every_steps=-1"], ["probe.every_steps=-1", ">= 0", "steps between looks; 0: none", "or null"]),
        "probe.units 0": (["probe.units=0"], ["probe.units=0", "from 1 to 64"]),
        "probe.units past the narrowest layer": (["probe.units=65"], ["probe.units=65", "from 1 to 64", "probe.every_steps=null",
                                                                      "model.hidden=[512, 256, 128, 64]"]),
        "retry_seconds negative": (["tracking.retry_seconds=-5"], ["tracking.retry_seconds=-5", ">= 0"]),
        "threads 0": (["threads=0"], ["threads=0", "from 1 to"]),
        "threads beyond the cores": (["threads=100000"], ["threads=100000", f"from 1 to {os.cpu_count()}"]),
        "BN momentum above 1": (["norm=bn1", "norm.momentum=2"], ["norm.momentum=2", "[0, 1]"]),
        "BN eps 0": (["norm=bn1", "norm.eps=0"], ["norm.eps=0", "> 0"]),
        "LN eps negative": (["norm=ln", "norm.eps=-1e-5"], ["norm.eps=-1e-05", "> 0"]),
        "norm.layers 0 with BN": (["norm=bn1", "norm.layers=0"], ["norm.layers=0", ">= 1"]),
    },
    "non-finite": {
        "BN eps inf": (["norm=bn1", "norm.eps=inf"], ["norm.eps=inf", "finite number"]),
        "BN momentum nan": (["norm=bn1", "norm.momentum=nan"], ["norm.momentum=nan", "finite number"]),
        "retry_seconds inf": (["tracking.retry_seconds=inf"], ["tracking.retry_seconds=inf", "finite number"]),
        "heartbeat zero": (["tracking.heartbeat_seconds=0"], ["tracking.heartbeat_seconds=0", "> 0"]),
        "stale before two beats": (["tracking.heartbeat_seconds=10", "tracking.stale_after_seconds=15"],
                                   ["tracking.stale_after_seconds=15", ">= 20", "two heartbeats"]),
        "leaky slope nan": (["act=leaky_relu", "act.negative_slope=nan"], ["act.negative_slope=nan", "finite number"]),
    },
    "cross-field": {
        "bnK deeper than the model": (["model=book", "norm=bn2", "loss=mse"], ["norm=bn2", "bn1..bn1"]),
        "bce with a softmax head": (["loss=bce"], ["loss=bce", "softmax", "model.head=sigmoid"]),
        "mse with a softmax head": (["loss=mse"], ["loss=mse", "softmax", "sigmoid or leaky_relu"]),
        "ce with a sigmoid head": (["model=book"], ["loss=ce", "sigmoid", "model.head=softmax"]),
        "BN with batch_size 1": (["batch_size=1", "norm=bn1"], ["batch_size=1", "norm=batch", "batch_size >= 2"]),
        "max_steps beyond the epochs": (["max_steps=5", "batch_size=256"],  # 512 images: 2 steps per epoch
                                        ["max_steps=5", "epochs >= 3", "batch_size=256", "epochs=1 gives 2",
                                         "max_steps <= 2"]),
        "equal steps beyond its epochs": (["+design=equal_steps", "data.limit_train=null", "batch_size=2048"],
                                          ["max_steps=938", "epochs >= 32", "batch_size=2048", "max_steps <= 30"]),
        "BN on a probe batch of 1": (["probe.samples=1", "norm=bn1", "norm.position=before"],
                                     ["probe.samples=1", "from 2 to 10000", "BatchNorm", "probe.every_steps=null"]),
        "a leaky head without a slope": (["model=book", "loss=mse", "model.head=leaky_relu"],
                                         ["model.head=leaky_relu", "act.negative_slope", "act=leaky_relu"]),
        "norm.kind=batch on a config without BN's settings": (["norm.kind=batch", "norm.layers=1"],
                                                              ["norm.kind=batch", "norm.eps", "norm=bn1..bn4"]),
        "norm layers with no norm": (["norm.layers=2"], ["norm.layers=2", "norm.kind=none", "0"]),
    },
    "tracking": {
        "uri garbage": (["tracking.uri=garbage"], ["tracking.uri='garbage'", "sqlite:///", "http(s)://"]),
        "uri empty": (["tracking.uri=''"], ["tracking.uri=''", "sqlite:///"]),
        "uri in memory": (["tracking.uri=sqlite://"], ["tracking.uri='sqlite://'", "a file"]),
        "uri without a host": (["tracking.uri=http://"], ["tracking.uri='http://'", "names its host"]),
        "the old file store": (["tracking.uri=file:./mlruns"], ["tracking.uri='file:./mlruns'", "sqlite:///"]),
        "sqlite in a missing sub/dir": (["tracking.uri=sqlite:///sub/dir/mlflow.db"],
                                        ["tracking.uri='sqlite:///sub/dir/mlflow.db'", "sub/dir does not exist"]),
        "experiment empty": (["tracking.experiment=''"], ["tracking.experiment=''", "non-empty"]),
        "experiment blank": (["tracking.experiment='  '"], ["tracking.experiment='  '", "non-empty"]),
        "database server down": (["tracking.uri=postgresql+psycopg2://me:secret@127.0.0.1:9/db"],
                                 ["tracking.uri='postgresql+psycopg2://me:***@127.0.0.1:9/db'", "cannot be opened"]),
    },
}

MULTIRUN: dict[str, dict[str, tuple[list[str], list[str]]]] = {
    "launcher": {
        "joblib n_jobs 0": (["hydra/launcher=joblib", "hydra.launcher.n_jobs=0"], ["hydra.launcher.n_jobs=0", ">= 1"]),
        "joblib backend": (["hydra/launcher=joblib", "hydra.launcher.backend=dask"],
                           ["hydra.launcher.backend='dask'", "loky"]),
        "submitit timeout 0": (["hydra/launcher=local", "hydra.launcher.timeout_min=0"],
                               ["hydra.launcher.timeout_min=0", ">= 1"]),
        "submitit cpus wrong type": (["hydra/launcher=local", "hydra.launcher.cpus_per_task=two"],
                                     ["hydra.launcher.cpus_per_task=two", "a whole number"]),
        "grid batch size 0": (["hydra.sweeper.max_batch_size=0"], ["hydra.sweeper.max_batch_size=0", ">= 1"]),
    },
    "optuna search space": {
        "interval upside down": ([*OPTUNA, "optimizer.lr=interval(1, 0.1)"],
                                 ["optimizer.lr=interval(1, 0.1)", "lower bound 1.0 is above its upper bound 0.1"]),
        "interval upside down in hydra.sweeper.params": (
            [*OPTUNA, "hydra.sweeper.params={optimizer.lr:'interval(1, 0.1)'}"],
            ["optimizer.lr=interval(1, 0.1)", "lower bound"]),
        "log scale through 0": ([*OPTUNA, "optimizer.lr=tag(log, interval(0, 1))"],
                                ["optimizer.lr=tag(log, interval(0, 1))", "lower bound > 0"]),
        "int log scale through 0": ([*OPTUNA, "batch_size=tag(log, int(interval(0, 64)))"],
                                    ["batch_size=tag(log, int(interval(0, 64)))", "lower bound >= 1"]),
        "range upside down": ([*OPTUNA, "batch_size=range(64, 8)"], ["batch_size=range(64, 8)", "above"]),
        "range step 0": ([*OPTUNA, "batch_size=range(8, 64, step=0)"], ["batch_size=range(8, 64, step=0)", "> 0"]),
        "empty choice": ([*OPTUNA, "batch_size=shuffle(range(4, 4))"], ["batch_size=shuffle(range(4, 4))", "no values"]),
        "empty choice()": ([*OPTUNA, "batch_size=choice()"], ["batch_size=choice()", "empty choice"]),
        "infinite bound": ([*OPTUNA, "optimizer.lr=interval(0.001, inf)"],
                           ["optimizer.lr=interval(0.001, inf)", "finite"]),
        "a bad choice in the space": ([*OPTUNA, "batch_size=choice(32, 99999)"],
                                      ["search space", "batch_size=99999", "1..512"]),
        "a wrongly typed choice in the space": ([*OPTUNA, "batch_size=choice(32, big)"],
                                                ["search space", "batch_size=big", "a whole number"]),
        "an interval in a grid": (["optimizer.lr=interval(0.001, 0.1)"],
                                  ["optimizer.lr=interval(0.001, 0.1)", "grid", "hparams_search=optuna"]),
        "n_trials negative": ([*OPTUNA, "hydra.sweeper.n_trials=-1"], ["hydra.sweeper.n_trials=-1", ">= 0"]),
        "n_jobs 0": ([*OPTUNA, "hydra.sweeper.n_jobs=0"], ["hydra.sweeper.n_jobs=0", ">= 1"]),
        "direction": ([*OPTUNA, "hydra.sweeper.direction=up"], ["hydra.sweeper.direction='up'", "minimize or maximize"]),
        "max_failure_rate": ([*OPTUNA, "hydra.sweeper.max_failure_rate=2"],
                             ["hydra.sweeper.max_failure_rate=2", "0.0 to 1.0"]),
        "pruner setting": ([*OPTUNA, "hydra.sweeper.pruner.n_startup_trials=-1"],
                           ["hydra.sweeper.pruner", "n_startup_trials=-1"]),
        "storage in a missing directory": ([*OPTUNA, "hydra.sweeper.storage=no/such/optuna.journal"],
                                           ["hydra.sweeper.storage=", "no/such", "does not exist"]),
        "a bad value for every trial": ([*OPTUNA, "probe.samples=0"], ["probe.samples=0", "from 1 to 10000"]),
        "the removed motpe sampler": ([*OPTUNA, "hydra/sweeper/sampler=motpe"],
                                      ["hydra/sweeper/sampler=motpe", "removed in Optuna 4.0", "sampler=tpe"]),
        "failure rate over what": ([*OPTUNA, "hydra.sweeper.failure_rate_over=epoch"],
                                   ["hydra.sweeper.failure_rate_over='epoch'", "batch", "run"]),
        "a custom search space that is not there": ([*OPTUNA, "hydra.sweeper.custom_search_space=nowhere.f"],
                                                    ["hydra.sweeper.custom_search_space='nowhere.f'", "dotted path"]),
    },
    "grid": {
        "one bad value": (["batch_size=64,0"], ["job #1 (batch_size=0", "batch_size=0 is not allowed"]),
        "one unknown choice": (["act=sigmoid,swish"], ["act/swish", "leaky_relu"]),
        "one wrong type": (["shuffle=true,maybe"], ["job #1 (shuffle=maybe", "true or false"]),
        "one number for a bool": (["shuffle=true,2"], ["job #1 (shuffle=2", "shuffle=2 is not allowed"]),
        "one bad combination": (["model=book", "loss=mse", "norm=bn1,bn2"], ["job #1 (", "norm=bn2 puts", "bn1..bn1"]),
        "show_record past the test set": (["model=book", "loss=bce", "model.show_record=19,99999"],
                                          ["job #1", "model.show_record=99999"]),
        "probe.samples 0 in the second job": (["probe.samples=100,0"], ["job #1", "probe.samples=0"]),
        "a tracking store in a missing dir": (["act=sigmoid,relu", "tracking.uri=sqlite:///sub/dir/mlflow.db"],
                                              ["sub/dir does not exist"]),
        "an empty experiment name": (["act=sigmoid,relu", "tracking.experiment=''"], ["tracking.experiment=''"]),
    },
}


def assert_refused(result, fragments, launch: Path) -> None:
    assert result.code == 2, result.err[-3000:]
    assert "Traceback" not in result.err, result.err[-3000:]
    lines = [line for line in result.err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.err[-3000:]
    for fragment in fragments:
        assert fragment in lines[0], f"{fragment!r} not in {lines[0]!r}"
    assert_nothing_written(launch)


def assert_nothing_written(launch: Path) -> None:
    leftovers = sorted(p.name for p in launch.iterdir())
    assert leftovers == [], f"a rejected command left {leftovers} behind"


def _flat(table):
    return [pytest.param(overrides, fragments, id=f"{kind}: {name}")
            for kind, cases in table.items() for name, (overrides, fragments) in cases.items()]


@pytest.mark.parametrize("overrides, fragments", _flat(CASES))
def test_bad_value_single_run(cli, tmp_path, overrides, fragments):
    assert_refused(cli(*QUICK, *overrides), fragments, tmp_path)


@pytest.mark.parametrize("overrides, fragments", _flat(MULTIRUN))
def test_bad_value_multirun(cli, tmp_path, overrides, fragments):
    assert_refused(cli("-m", *overrides, *QUICK), fragments, tmp_path)


# --- cases that need a file, an environment or a machine -------------------------------------------

@pytest.fixture
def a_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("elsewhere") / "plain-file"
    path.write_text("not a directory")
    return path


def test_cuda_requested_without_a_gpu(cli, tmp_path):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU; the check is for machines without one")
    assert_refused(cli("device=cuda", *QUICK), ["device='cuda' is not available"], tmp_path)


def test_graph_engine_without_a_gpu(cli, tmp_path):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU; the check is for machines without one")
    assert_refused(cli("engine=graph", *QUICK), ["engine=graph needs a CUDA device"], tmp_path)


def test_data_root_not_writable(cli, a_file, tmp_path):
    result = cli(f"data.root={a_file}/mnist", *QUICK)
    assert result.code == 2
    assert "data.root" in result.err and "not writable" in result.err and str(a_file) in result.err
    assert_nothing_written(tmp_path)


@pytest.mark.parametrize("multirun", [False, True], ids=["single run", "multirun"])
@pytest.mark.parametrize("where", ["the file", "under the file"])
def test_checkpoint_dir_that_is_a_file(cli, a_file, tmp_path, multirun, where):
    path = a_file if where == "the file" else a_file / "checkpoints"
    args = ["-m", "act=sigmoid,relu"] if multirun else []
    assert_refused(cli(*args, *QUICK, f"checkpoint_dir={path}"), [f"checkpoint_dir='{path}'", "is a file"], tmp_path)


def test_checkpoint_dir_read_only(cli, tmp_path_factory, tmp_path, read_only):
    ro = tmp_path_factory.mktemp("ro")
    read_only(ro)
    try:
        assert_refused(cli("-m", "act=sigmoid,relu", *QUICK, f"checkpoint_dir={ro}/ck"),
                       [f"checkpoint_dir='{ro}/ck'", "may not write"], tmp_path)
        assert list(ro.iterdir()) == []
    finally:
        read_only.undo(ro)


def test_checkpoint_dir_where_nothing_can_be_created(cli, tmp_path):
    if not Path("/proc/self").is_dir():
        pytest.skip("no /proc here")
    assert_refused(cli(*QUICK, "checkpoint_dir=/proc/checkpoints"), ["checkpoint_dir='/proc/checkpoints'", "may not write"],
                   tmp_path)


@pytest.mark.parametrize("kind", ["a directory", "a file under a file", "not a database"])
def test_tracking_uri_on_a_path_that_cannot_hold_a_database(cli, tmp_path_factory, a_file, tmp_path, kind):
    elsewhere = tmp_path_factory.mktemp("store")
    target = {"a directory": elsewhere, "a file under a file": a_file / "mlflow.db", "not a database": a_file}[kind]
    expected = {"a directory": "is a directory", "a file under a file": "is a file, not a directory",
                "not a database": "is not an SQLite database"}[kind]
    assert_refused(cli(*QUICK, f"tracking.uri=sqlite:///{target}"), [f"tracking.uri='sqlite:///{target}'", expected],
                   tmp_path)


@pytest.mark.parametrize("multirun", [False, True], ids=["single run", "multirun"])
def test_missing_data_is_refused_before_the_store_is_created(cli, tmp_path_factory, tmp_path, multirun):
    """The data is looked for last: by then nothing may exist yet (once an empty mlflow.db was left behind)."""
    empty = tmp_path_factory.mktemp("no-data")
    args = ["-m", "act=sigmoid,relu"] if multirun else []
    result = cli(*args, *QUICK, f"data.root={empty}", "data.sources=[local]")
    assert result.code == 2 and "local: no files there" in result.err and "Traceback" not in result.err
    assert result.err.count("\n") == 1
    assert_nothing_written(tmp_path)


def test_tracking_uri_from_the_environment(cli, tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "garbage")
    assert_refused(cli(*QUICK), ["MLFLOW_TRACKING_URI='garbage'", "sqlite:///"], tmp_path)


def test_interval_upside_down_in_an_experiment_file(cli, tmp_path_factory, tmp_path):
    """A search space in a user's own experiment file (hydra.sweeper.params) is checked like the command line."""
    conf = tmp_path_factory.mktemp("my_conf")
    (conf / "experiment").mkdir()
    (conf / "experiment" / "mine.yaml").write_text(
        "# @package _global_\ndefaults:\n  - override /hparams_search: optuna\n"
        "hydra:\n  sweeper:\n    n_trials: 1\n    params:\n      optimizer.lr: interval(1, 0.1)\n")
    assert_refused(cli("-m", "--config-dir", str(conf), "+experiment=mine", *QUICK),
                   ["optimizer.lr=interval(1, 0.1)", "lower bound"], tmp_path)


def test_a_refused_search_leaves_no_lock_beside_an_existing_database(cli, tmp_path):
    """Nothing is written beside the database (no lock, no journal) before every check passed."""
    (tmp_path / "mlflow.db").write_bytes(b"")
    result = cli("-m", *QUICK, *OPTUNA, "probe.samples=0")
    assert result.code == 2, result.err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mlflow.db"]


def test_multirun_flag_with_cfg(cli, tmp_path):
    assert_refused(cli("-m", "--cfg", "job"), ["Only one of --run, --multirun", "drop -m"], tmp_path)


# --- the real process ------------------------------------------------------------------------------

REAL = {
    "wrong type": ["shuffle=maybe"],
    "string choice": ["act.name=gelu"],
    "out of range": ["probe.samples=0"],
    "non-finite": ["norm=bn1", "norm.eps=inf"],
    "cross-field": ["loss=bce"],
    "path": ["checkpoint_dir=FILE"],
    "tracking": ["tracking.uri=garbage"],
    "launcher": ["-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=0"],
    "optuna search space": ["-m", *OPTUNA, "optimizer.lr=interval(1, 0.1)"],
    "grid": ["-m", "batch_size=64,0"],
}
REAL_FRAGMENTS = {
    "wrong type": ["shuffle=maybe", "true or false"],
    "string choice": ["act.name='gelu'", "sigmoid"],
    "out of range": ["probe.samples=0", "from 1 to 10000"],
    "non-finite": ["norm.eps=inf", "finite"],
    "cross-field": ["loss=bce", "model.head=sigmoid"],
    "path": ["checkpoint_dir=", "is a file"],
    "tracking": ["tracking.uri='garbage'"],
    "launcher": ["hydra.launcher.n_jobs=0"],
    "optuna search space": ["optimizer.lr=interval(1, 0.1)", "lower bound"],
    "grid": ["job #1 (batch_size=0", "batch_size=0 is not allowed"],
}


@pytest.fixture(scope="module")
def real_runs(tmp_path_factory):
    """Every REAL case as its own ``python -m bn_study`` process, all started at once (each in its own
    empty launch directory), then waited for."""
    a_file = tmp_path_factory.mktemp("real-elsewhere") / "plain-file"
    a_file.write_text("not a directory")
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "HYDRA_FULL_ERROR")}
    started = {}
    for name, args in REAL.items():
        launch = tmp_path_factory.mktemp("real-launch")
        argv = [a.replace("FILE", str(a_file)) for a in args]
        multirun = argv[:1] == ["-m"]
        argv = (["-m", *argv[1:], *QUICK]) if multirun else [*QUICK, *argv]
        started[name] = (launch, subprocess.Popen([sys.executable, "-m", "bn_study", *argv], cwd=launch, env=env,
                                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    results = {}
    for name, (launch, proc) in started.items():
        out, err = proc.communicate(timeout=600)
        results[name] = (launch, proc.returncode, out, err)
    return results


@pytest.mark.parametrize("name", list(REAL))
def test_the_real_process_exits_2_with_one_line_and_writes_nothing(real_runs, name):
    launch, code, _, err = real_runs[name]
    assert code == 2, err[-3000:]
    assert "Traceback" not in err
    assert err.count("\n") == 1 and err.startswith("error: "), err[-3000:]
    for fragment in REAL_FRAGMENTS[name]:
        assert fragment in err, f"{fragment!r} not in {err!r}"
    assert_nothing_written(launch)


@pytest.mark.parametrize("overrides, fragments", [
    (["+experiment=bn_vs_none", "report.sequential.add=0"], ["report.sequential.add must be a whole number >= 1, not 0"]),
    (["+experiment=bn_vs_none", "+report.sequential.look=2"], ["report.sequential has unknown keys ['look']"]),
    (["+experiment=bn_vs_none", "report.sequential.spending=linear"],
     ["report.sequential.spending must be one of pocock, obrien_fleming, not 'linear'"]),
    (["+experiment=bn_vs_none", "report.analysis=pairs"], ["report.analysis must be one of welch, paired, not 'pairs'"]),
    (["+experiment=bn_vs_none", "+report.sequential.claims=[sigmoid_speed]"],
     ["report.sequential.claims names ['sigmoid_speed'], which are no claim ids of this report"]),
    (["+experiment=bn_vs_none", "hparams_search=optuna", "hydra.sweeper.n_trials=1"],
     ["report.sequential is set, but only the grid sweeper adds seeds"]),
])
def test_a_bad_report_section_stops_the_sweep_before_any_run(cli, tmp_path, overrides, fragments):
    """The sequential looks run inside the sweep, after the planned jobs: their settings are checked first."""
    assert_refused(cli("-m", *overrides, *QUICK), fragments, tmp_path)

