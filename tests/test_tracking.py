"""What MLflow holds after real runs of the entry point on real MNIST (a small slice, 1–2 epochs)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from mlflow import MlflowClient

QUICK = ("data.limit_train=1000", "log_every=4")


def artifacts(client: MlflowClient, run_id: str) -> set[str]:
    return {a.path for a in client.list_artifacts(run_id)}


def test_one_epoch_run(cli, tmp_path, runs_in):
    result = cli("epochs=1", "norm=bn1", *QUICK)
    assert result.code == 0, result.err
    client, [run] = runs_in(tmp_path)
    assert run.info.status == "FINISHED"
    # the condition (what differs from the defaults, canonical order, bookkeeping such as log_every left out)
    assert run.info.run_name == "norm=bn1 data.limit_train=1000 epochs=1 seed=0"
    assert (tmp_path / "mlruns").is_dir()  # artifacts beside the database, where `mlflow ui` looks

    params = run.data.params
    assert params["model.hidden"] == "[512, 256, 128, 64]"
    assert params["norm.kind"] == "batch" and params["norm.layers"] == "1" and params["norm.momentum"] == "0.01"
    assert params["optimizer.lr"] == "0.01" and params["optimizer.nesterov"] == "True"
    assert params["seed"] == "0" and params["batch_size"] == "128" and params["data.val"] == "test"

    tags = run.data.tags
    for key in ("git_commit", "git_dirty", "device", "torch_version", "overrides", "val_split"):
        assert tags[key], key
    assert tags["overrides"] == "epochs=1 norm=bn1 data.limit_train=1000 log_every=4"
    assert tags["val_split"].startswith("test")
    assert "multirun_dir" not in tags and "mlflow.parentRunId" not in tags

    history = {key: client.get_metric_history(run.info.run_id, key) for key in run.data.metrics}
    for key in ("train_loss", "train_acc", "val_loss", "val_acc", "epoch_seconds"):
        assert [m.step for m in history[key]] == [1], key
    assert 0.0 <= history["val_acc"][0].value <= 1.0
    # 1000/128 → 8 steps, loss logged every 4th
    assert [m.step for m in history["step_loss"]] == [4, 8]
    # the probe: every hidden layer, before training (step 0) and after each epoch
    for layer in range(1, 5):
        for stat in ("mean", "std", "saturated"):
            assert [m.step for m in history[f"act{layer}_{stat}"]] == [0, 1]
    assert 0 <= history["act1_saturated"][-1].value <= 1
    # validation was the test set: test_* is the last val_*, not a second look
    assert [(m.step, m.value) for m in history["test_acc"]] == [(1, history["val_acc"][0].value)]
    assert tags["condition"] == "norm=bn1 data.limit_train=1000 epochs=1"

    assert artifacts(client, run.info.run_id) == {"config.yaml", "curves.png", "activations.png", "preactivations.png"}
    config_text = Path(client.download_artifacts(run.info.run_id, "config.yaml", str(tmp_path / "dl"))).read_text()
    assert "kind: batch" in config_text and "seed: 0" in config_text


def test_book_model_shows_record_19(cli, tmp_path, runs_in):
    result = cli("model=book", "loss=mse", "optimizer.momentum=0", "optimizer.nesterov=false", "batch_size=1",
                 "shuffle=false", "epochs=1", "data.limit_train=300", "log_every=10", "act=relu")
    assert result.code == 0, result.err
    client, [run] = runs_in(tmp_path)
    names = artifacts(client, run.info.run_id)
    assert {"record_19.png", "record_19_outputs.txt", "curves.png", "activations.png"} <= names
    outputs = Path(client.download_artifacts(run.info.run_id, "record_19_outputs.txt", str(tmp_path / "dl")))
    assert len(outputs.read_text().split()) == 10
    # relu: the fraction of zero activations and of units zero on every probe image (dead), not "saturated"
    assert {"act1_zero_frac", "act1_dead_units"} <= set(run.data.metrics) and "act1_saturated" not in run.data.metrics
    assert [m.step for m in client.get_metric_history(run.info.run_id, "step_loss")][:3] == [10, 20, 30]


def test_two_job_multirun_has_one_parent_and_two_children(cli, tmp_path, runs_in):
    result = cli("-m", "norm=none,bn1", "epochs=2", *QUICK)
    assert result.code == 0, result.err
    client, runs = runs_in(tmp_path)
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(parents) == 1 and len(children) == 2
    parent = parents[0]
    assert parent.info.status == "FINISHED"
    assert all(c.data.tags["mlflow.parentRunId"] == parent.info.run_id for c in children)
    assert all(c.info.status == "FINISHED" for c in children)
    # norm=none is the default: its condition is what the command line changed for both
    assert sorted(c.data.tags["condition"] for c in children) == ["data.limit_train=1000 epochs=2",
                                                                  "norm=bn1 data.limit_train=1000 epochs=2"]
    assert sorted(c.info.run_name for c in children) == sorted(f"{c.data.tags['condition']} seed=0" for c in children)
    sweep_dir = Path(parent.data.tags["multirun_dir"])
    assert all(c.data.tags["multirun_dir"] == str(sweep_dir) for c in children)
    assert json.loads((tmp_path / sweep_dir / "mlflow_parent.json").read_text())["run_id"] == parent.info.run_id
    for child in children:
        assert len(client.get_metric_history(child.info.run_id, "val_acc")) == 2
        assert artifacts(client, child.info.run_id) == {"config.yaml", "curves.png", "activations.png",
                                                        "preactivations.png"}


def test_same_seed_reproduces_metrics_exactly_on_cpu(cli, tmp_path, runs_in):
    for _ in range(2):  # threads pinned: with auto, a busy core could change the count and so the sums' order
        assert cli("epochs=2", "act=relu", "norm=bn1", "device=cpu", "threads=1", *QUICK).code == 0
    client, (first, second) = runs_in(tmp_path)
    for key in ("train_loss", "val_loss", "val_acc", "step_loss", "act2_mean"):
        a = [(m.step, m.value) for m in client.get_metric_history(first.info.run_id, key)]
        b = [(m.step, m.value) for m in client.get_metric_history(second.info.run_id, key)]
        assert a == b, key


def test_divergence_marks_the_run_failed_with_a_reason(cli, tmp_path, runs_in):
    result = cli("epochs=3", "act=relu", "optimizer.lr=1e30", "optimizer.momentum=0", "optimizer.nesterov=false", *QUICK)
    assert result.code == 1
    client, [run] = runs_in(tmp_path)
    assert run.info.status == "FAILED"
    # the first logged step after the blow-up (log_every=4), with the value, the step and the epoch
    assert run.data.tags["failure_reason"] == "training loss became nan at step 4 (epoch 1)"


def test_holdout_keeps_the_test_set_unseen_unless_final_test(cli, tmp_path, runs_in):
    assert cli("epochs=1", "data.val=holdout", "probe.enabled=false", "tracking.figures=false", *QUICK).code == 0
    assert cli("epochs=1", "data.val=holdout", "final_test=true", "probe.enabled=false", "tracking.figures=false",
               *QUICK).code == 0
    client, runs = runs_in(tmp_path)
    by_final = {r.data.params["final_test"]: r for r in runs}
    assert "test_acc" not in by_final["False"].data.metrics
    tuned = by_final["True"]
    assert tuned.data.tags["val_split"].startswith("holdout")
    assert 0 <= tuned.data.metrics["test_acc"] <= 1 and tuned.data.metrics["test_acc"] != tuned.data.metrics["val_acc"]


@pytest.mark.parametrize("uri_from", ["config", "env"])
def test_tracking_uri_can_point_elsewhere(cli, tmp_path, monkeypatch, uri_from, runs_in):
    elsewhere = tmp_path / "store"
    elsewhere.mkdir()
    uri = f"sqlite:///{elsewhere / 'runs.db'}"
    args = ["epochs=1", "probe.enabled=false", "tracking.figures=false", *QUICK]
    if uri_from == "config":
        args.append(f"tracking.uri={uri}")
    else:
        monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    assert cli(*args).code == 0
    assert not (tmp_path / "mlflow.db").exists()
    [run] = runs_in(uri)[1]
    assert run.info.status == "FINISHED"


def test_run_names_fit_every_mlflow_store_and_keep_the_seed():
    from bn_study.tracking.parent import sweep_description
    from bn_study.tracking.naming import MAX_RUN_NAME, SHORT_RUN_NAME, run_name

    long = [f"tracking.uri=http://127.0.0.1:5000/{'x' * 300}", "norm=bn1"]
    name = run_name(" ".join(f"model.hidden[{i}]=512" for i in range(30)), 3)
    assert len(name) == SHORT_RUN_NAME + len(" seed=3") and name.endswith("… seed=3")
    # numbers as people read them (the condition itself keeps 6 digits, the params every digit)
    assert run_name("norm=bn1 optimizer.lr=0.359502", 0) == "norm=bn1 optimizer.lr=0.3595 seed=0"
    assert run_name("defaults", 2) == "defaults seed=2"
    assert len(sweep_description(long)) == MAX_RUN_NAME


def test_a_real_run_learns_mnist(cli, tmp_path, runs_in):
    """Two epochs on 1 000 real MNIST images (relu + bn1, 32 steps per epoch): only a model that learns clears
    these floors on the 10 000 test images (chance is 10 %; this run measured 60.8 % then 81.2 %)."""
    result = cli("act=relu", "norm=bn1", "batch_size=32", "epochs=2", "data.limit_train=1000", "threads=1",
                 "tracking.figures=false")
    assert result.code == 0, result.err
    client, [run] = runs_in(tmp_path)
    val_acc = [m.value for m in client.get_metric_history(run.info.run_id, "val_acc")]
    train_loss = [m.value for m in client.get_metric_history(run.info.run_id, "train_loss")]
    assert val_acc[0] > 0.5 and val_acc[1] > 0.75, val_acc
    assert train_loss[1] < train_loss[0] / 2, train_loss
