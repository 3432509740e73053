"""Every mistake a user can make on the command line: one sentence naming the value and what is
allowed, exit code 2, and nothing written — no MLflow database, no run or sweep directory."""

from __future__ import annotations

import pytest
import torch

QUICK = ("data.limit_train=512", "epochs=1")

CASES = {
    "unknown group choice": (["norm=bn9"], ["norm/bn9", "bn1", "bn4", "ln", "none"]),
    "bnK deeper than the model": (["model=book", "norm=bn2", "loss=mse"], ["norm=bn2", "bn1..bn1"]),
    "bce with a softmax head": (["loss=bce"], ["loss=bce", "softmax", "model.head=sigmoid"]),
    "mse with a softmax head": (["loss=mse"], ["loss=mse", "softmax", "sigmoid or leaky_relu"]),
    "ce with a sigmoid head": (["model=book"], ["loss=ce", "sigmoid", "model.head=softmax"]),
    "batch_size < 1": (["batch_size=0"], ["batch_size=0", ">= 1"]),
    "batch_size > train size": (["batch_size=60001"], ["batch_size=60001", "1..60000"]),
    "batch_size > limited train size": (["batch_size=600", "data.limit_train=500"], ["batch_size=600", "1..500"]),
    "BN with batch_size 1": (["batch_size=1", "norm=bn1"], ["batch_size=1", "norm=batch", "batch_size >= 2"]),
    "lr = 0": (["optimizer.lr=0"], ["optimizer.lr=0", "> 0"]),
    "lr < 0": (["optimizer=adam", "optimizer.lr=-0.001"], ["optimizer.lr=-0.001", "> 0"]),
    "epochs < 1": (["epochs=0"], ["epochs=0", ">= 1"]),
    "unknown device": (["device=tpu"], ["device='tpu'", "auto, cpu, cuda or cuda:N"]),
    "unknown activation value": (["act.name=gelu"], ["act.name='gelu'", "sigmoid, relu, leaky_relu, tanh"]),
    "unknown val split": (["data.val=train"], ["data.val='train'", "test, holdout"]),
    "malformed override": (["norm=[bn1"], ["norm=[bn1"]),
    "limit_train beyond the data": (["data.limit_train=70000"], ["data.limit_train=70000", "1..60000"]),
    "seeds with a repeat": (["seeds=[0,0]"], ["seeds=[0, 0]", "once"]),
}


def assert_nothing_written(tmp_path):
    leftovers = sorted(p.name for p in tmp_path.iterdir())
    assert leftovers == [], f"a rejected command left {leftovers} behind"


@pytest.mark.parametrize("name", list(CASES))
def test_bad_value_single_run(cli, tmp_path, name):
    overrides, expected = CASES[name]
    result = cli(*overrides)
    assert result.code == 2, result.err
    for fragment in expected:
        assert fragment in result.err
    assert "Traceback" not in result.err
    assert_nothing_written(tmp_path)


def test_cuda_requested_without_a_gpu(cli, tmp_path):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU; the check is for machines without one")
    result = cli("device=cuda", *QUICK)
    assert result.code == 2
    assert "device='cuda' is not available" in result.err
    assert_nothing_written(tmp_path)


def test_data_root_not_writable(cli, tmp_path_factory, tmp_path):
    a_file = tmp_path_factory.mktemp("ro") / "plain-file"
    a_file.write_text("not a directory")
    result = cli(f"data.root={a_file}/mnist", *QUICK)
    assert result.code == 2
    assert "data.root" in result.err and "not writable" in result.err
    assert_nothing_written(tmp_path)


def test_one_bad_job_in_a_grid_stops_the_multirun_before_anything_runs(cli, tmp_path):
    result = cli("-m", "batch_size=64,0", *QUICK)
    assert result.code == 2
    assert "job #1 (batch_size=0" in result.err and "batch_size=0 is not allowed" in result.err
    assert "epoch 1/1" not in result.out  # job #0 did not train either
    assert_nothing_written(tmp_path)


def test_unknown_choice_in_a_grid(cli, tmp_path):
    result = cli("-m", "act=sigmoid,swish", *QUICK)
    assert result.code == 2
    assert "act/swish" in result.err and "leaky_relu" in result.err
    assert_nothing_written(tmp_path)
