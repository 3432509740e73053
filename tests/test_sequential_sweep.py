"""``report.sequential`` through the real entry point: a grid with two claims, one decided at the planned seeds
and one that can never be decided; the sweep adds seeds to exactly the undecided claim's conditions, look by
look up to the cap, in the same parent run, and the report states the looks it took."""

from __future__ import annotations

import yaml

from bn_study.report.__main__ import main as report_main

EXPERIMENT = {
    "seeds": [0, 1],
    "tracking": {"experiment": "seqdemo"},
    "hydra": {"sweeper": {"params": {"act": "sigmoid,relu", "norm": "none,bn1"}}},
    "report": {
        "sequential": {"add": 1, "max_seeds": 3},
        "claims": [
            # nobody reaches 100 % in one epoch: both arms censored, so no look can ever decide it
            {"id": "never", "text": "sigmoid+BN reaches 100 % sooner", "test": "faster", "a": {"act": "sigmoid", "norm": "bn1"},
             "b": {"act": "sigmoid", "norm": "none"}, "metric": "val_acc", "threshold": 100},
            # any two losses are within ±1000 of each other: decided at the first look
            {"id": "always", "text": "relu losses within 1000", "test": "equivalent", "margin": 1000,
             "a": {"act": "relu", "norm": "bn1"}, "b": {"act": "relu", "norm": "none"}, "metric": "train_loss"},
        ],
    },
}
QUICK = ("epochs=1", "data.limit_train=300", "probe.samples=50", "tracking.figures=false", "threads=1")


def test_undecided_claims_get_seeds_until_the_cap(cli, tmp_path, runs_in, monkeypatch, capsys):
    conf = tmp_path / "conf" / "experiment"
    conf.mkdir(parents=True)
    (conf / "seqdemo.yaml").write_text("# @package _global_\n" + yaml.safe_dump(EXPERIMENT))
    swept = cli("-m", "--config-dir", str(tmp_path / "conf"), "+experiment=seqdemo", *QUICK)
    assert swept.code == 0, swept.err[-3000:]
    assert "sequential seeds: 2 jobs of undecided claims get seeds 2" in swept.out + swept.err
    client, runs = runs_in(tmp_path, "seqdemo")
    [parent] = [r for r in runs if r.data.tags.get("role") == "multirun parent"]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    seeds: dict[str, set[int]] = {}
    for r in children:
        assert r.info.status == "FINISHED"
        seeds.setdefault(r.data.tags["condition"], set()).add(int(r.data.tags["seed"]))
    quick = "data.limit_train=300 epochs=1"  # sigmoid and norm=none are the defaults
    assert seeds == {quick: {0, 1, 2}, f"norm=bn1 {quick}": {0, 1, 2},
                     f"act=relu {quick}": {0, 1}, f"act=relu norm=bn1 {quick}": {0, 1}}

    monkeypatch.chdir(tmp_path)
    assert report_main(["seqdemo", "--config-dir", str(tmp_path / "conf"), "--out", "reports", "--no-artifacts"]) == 0
    capsys.readouterr()
    text = (tmp_path / "reports" / "seqdemo" / "README.md").read_text()
    assert ("Sequential seeds (pocock spending, +1 per look, cap 3): looks planned at 2 seeds (α 0.0382), "
            "3 seeds (α 0.0118); looks taken: 2 of 2.") in text
    never = next(ln for ln in text.splitlines() if ln.startswith("| **1. sigmoid+BN"))
    always = next(ln for ln in text.splitlines() if ln.startswith("| **2. relu losses"))
    assert "**inconclusive**" in never and "look 2, 3 seeds per condition" in never
    assert "**supported**" in always and "look 1, 2 seeds per condition" in always
