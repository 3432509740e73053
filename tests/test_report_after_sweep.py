"""``python -m bn_study.report`` on the store a real sweep wrote (not a hand-built one): a 2-job grid of a
shipped experiment, 2 seeds each, one epoch on 500 real MNIST images. The report's tables must hold the
numbers the runs logged, summarised and formatted as the report promises (mean ± 95 % t-interval over
seeds, accuracies in percent with 2 decimals, losses with 4)."""

from __future__ import annotations

import math

from scipy import stats

from bn_study.report.__main__ import main as report_main

SWEEP = ("-m", "+experiment=bn_vs_none", "act=relu", "seeds=[0,1]", "epochs=1", "data.limit_train=500", "report.sequential=null",
         "probe.samples=100", "tracking.figures=false", "threads=1")
LABELS = {"none": "relu, no BN", "bn1": "relu, BN after layer 1"}  # conf/experiment/bn_vs_none.yaml


def mean_ci(values: list[float], decimals: int) -> str:
    """What the report's cells say, computed here from the store's values: mean ± t(0.975, n-1)·s/√n."""
    n = len(values)
    mean = sum(values) / n
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    half = stats.t.ppf(0.975, n - 1) * sd / math.sqrt(n)
    return f"{mean:.{decimals}f} ± {half:.{decimals}f}"


def test_report_of_a_real_sweep_shows_its_runs_numbers(cli, tmp_path, runs_in, monkeypatch, capsys):
    swept = cli(*SWEEP)
    assert swept.code == 0, swept.err[-3000:]
    client, runs = runs_in(tmp_path, "bn_vs_none")
    [parent] = [r for r in runs if r.data.tags.get("role") == "multirun parent"]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert len(children) == 4 and all(r.info.status == "FINISHED" for r in children)

    monkeypatch.chdir(tmp_path)  # the report reads ./mlflow.db, as the training app wrote it
    code = report_main(["bn_vs_none", "--out", "reports"])
    printed = capsys.readouterr()
    assert code == 0, printed.err
    readme = tmp_path / "reports" / "bn_vs_none" / "README.md"
    assert f"bn_vs_none: {readme.relative_to(tmp_path)}" in printed.out
    text = readme.read_text(encoding="utf-8")

    # where the numbers come from: this sweep's parent run, its 4 child runs
    assert f"--parent {parent.info.run_id}" in text
    assert "4 child runs (4 FINISHED)" in text
    assert "> **Not the study as configured:** this sweep ran with the extra overrides" in text

    rows = {}
    for norm, label in LABELS.items():
        mine = sorted((r for r in children if r.data.params["norm.kind"] == ("none" if norm == "none" else "batch")),
                      key=lambda r: int(r.data.tags["seed"]))
        assert [r.data.tags["seed"] for r in mine] == ["0", "1"]
        test_acc = [100 * r.data.metrics["test_acc"] for r in mine]  # the report's accuracies are in percent
        test_loss = [r.data.metrics["test_loss"] for r in mine]
        train_loss = [r.data.metrics["train_loss"] for r in mine]
        assert test_acc[0] != test_acc[1] and train_loss[0] != train_loss[1]  # two seeds, two runs
        # 1 epoch on 500 images never reaches the threshold of 90 % test accuracy: `>1` per seed
        rows[norm] = (f"| {label} | 2/2 | {mean_ci(test_acc, 2)} | {mean_ci(test_loss, 4)} | "
                      f"{mean_ci(train_loss, 4)} | >1 · >1 |")
        assert rows[norm] in text, (rows[norm], text[text.index("## Final metrics"):][:1500])
        # the relu claim's arms: val_acc after epoch 1, per condition
        val_acc = [100 * r.data.metrics["val_acc"] for r in mine]
        assert f"{label}: {mean_ci(val_acc, 2)} (n=2; one run's test-set SE ± " in text
    assert rows["none"].split(" | ")[2] != rows["bn1"].split(" | ")[2]  # the two conditions' test_acc differ
    # the sigmoid conditions of the experiment did not run in this sweep, and the report says so
    assert "(not in this sweep)" in text
    for png in ("curves.png", "dead_relu.png"):
        assert (tmp_path / "reports" / "bn_vs_none" / png).stat().st_size > 1000, png
    # the same files as artifacts of the sweep's parent run
    logged = {a.path for a in client.list_artifacts(parent.info.run_id, "report")}
    assert {"report/README.md", "report/curves.png"} <= logged
