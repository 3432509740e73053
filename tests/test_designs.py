"""The batch-size designs of conf/design/ through the real entry point: equal optimizer steps end training mid-
epoch at the same update count for every batch size; the linear scaling rule sets lr ∝ batch."""

from __future__ import annotations

import re

import pytest

from bn_study.config.resolvers import linear_scaling
from bn_study.report.__main__ import main as report_main

QUICK = ("data.limit_train=512", "probe.samples=100", "probe.every_steps=null", "tracking.figures=false", "threads=1")


def _children(runs):
    return [r for r in runs if "mlflow.parentRunId" in r.data.tags]


STUDY = """\
# @package _global_
tracking:
  experiment: tiny_steps
hydra:
  sweeper:
    params:
      +design: equal_steps
      batch_size: 16,64
report:
  title: tiny equal steps
  threshold: {metric: val_acc, value: 0, by: [epochs, steps]}
  figures:
    - {name: per_step, kind: curves, x: steps, metrics: [val_acc]}
"""


def test_equal_steps_stops_every_batch_size_at_the_same_update(cli, tmp_path, runs_in, monkeypatch, capsys):
    """512 images: batch 16 makes 32 steps an epoch, batch 64 makes 8; 40 steps are 1¼ epochs or 5. The report
    times the threshold (any accuracy: reached at the first epoch's end) in epochs and in steps."""
    conf = tmp_path / "my_conf"
    (conf / "experiment").mkdir(parents=True)
    (conf / "experiment" / "tiny_steps.yaml").write_text(STUDY, encoding="utf-8")
    done = cli("-m", "--config-dir", str(conf), "+experiment=tiny_steps", "max_steps=40", *QUICK)
    assert done.code == 0, done.err[-3000:]
    client, runs = runs_in(tmp_path, "tiny_steps")
    by_batch = {r.data.params["batch_size"]: r for r in _children(runs)}
    assert sorted(by_batch) == ["16", "64"]
    for batch, steps in (("16", {1: 32.0, 2: 40.0}), ("64", {e: 8.0 * e for e in range(1, 6)})):
        r = by_batch[batch]
        assert r.info.status == "FINISHED"
        assert {m.step: m.value for m in client.get_metric_history(r.info.run_id, "steps")} == steps
        assert sorted(m.step for m in client.get_metric_history(r.info.run_id, "val_acc")) == sorted(steps)
        assert (r.data.params["max_steps"], r.data.params["epochs"]) == ("40", "16")

    monkeypatch.chdir(tmp_path)
    assert report_main(["tiny_steps", "--config-dir", str(conf), "--out", "reports", "--no-artifacts"]) == 0, \
        capsys.readouterr().err
    out = tmp_path / "reports" / "tiny_steps"
    text = (out / "README.md").read_text(encoding="utf-8")
    head = next(line for line in text.splitlines() if line.startswith("| condition"))
    assert head.endswith("| epochs to val_acc ≥ 0 (per seed) | steps to val_acc ≥ 0 (per seed) |")
    rows = {re.search(r"batch_size=(\d+)", line).group(1): line for line in text.splitlines()
            if line.startswith("| ") and "batch_size=" in line}
    assert rows["16"].endswith("| 1 | 32 |") and rows["64"].endswith("| 1 | 8 |")
    assert "against optimizer steps (log scale)" in text and (out / "per_step.png").stat().st_size > 10_000


def test_linear_lr_scales_the_learning_rate_with_the_batch(cli, tmp_path, runs_in):
    done = cli("-m", "+design=linear_lr", "batch_size=16,256", "epochs=1", *QUICK)
    assert done.code == 0, done.err[-3000:]
    _, runs = runs_in(tmp_path)
    lrs = {r.data.params["batch_size"]: float(r.data.params["optimizer.lr"]) for r in _children(runs)}
    assert lrs == {"16": pytest.approx(0.01 * 16 / 128), "256": pytest.approx(0.01 * 256 / 128)}


def test_the_article_design_leaves_the_run_as_it_was(cli, tmp_path, runs_in):
    done = cli("+design=epochs", "epochs=1", *QUICK)
    assert done.code == 0, done.err[-3000:]
    client, runs = runs_in(tmp_path)
    (r,) = runs
    assert (r.data.params["optimizer.lr"], r.data.params["max_steps"], r.data.params["epochs"]) == ("0.01", "None", "1")
    assert [m.value for m in client.get_metric_history(r.info.run_id, "steps")] == [4.0]  # 512 / 128


def test_linear_scaling_is_base_times_batch_over_reference():
    assert linear_scaling(0.01, 128, 4) == pytest.approx(0.0003125)
    assert linear_scaling(0.01, 128, 1024) == pytest.approx(0.08)
    for bad in ((0.01, 0, 4), (-1, 128, 4), (0.01, 128, "4"), (True, 128, 4)):
        with pytest.raises(ValueError, match="linear_scaling"):
            linear_scaling(*bad)
