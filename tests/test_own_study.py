"""A user's own question, by config alone: an experiment file with claims in a config directory outside the
package is swept through ``python -m bn_study --config-dir DIR`` and judged by ``python -m bn_study.report NAME
--config-dir DIR``, with a verdict per claim (README "Write your own study")."""

from __future__ import annotations

import re
from pathlib import Path

from bn_study.report.__main__ import main as report_main

# Two learning rates a thousandfold apart: after one epoch on 3 000 images (relu, one BN layer) the large one is far ahead, so the
# verdicts are known in advance — "better by ≥ 10 pp" holds, "as good as, ±0.5 pp" is contradicted.
STUDY = """\
# @package _global_
defaults:
  - override /model: article
  - override /optimizer: sgd
seeds: [0, 1, 2]
tracking:
  experiment: my_lr_question
hydra:
  sweeper:
    params:
      optimizer.lr: 0.1,0.0001
report:
  title: "my own question: does a larger learning rate help after one epoch?"
  analysis: paired
  conditions:
    - {select: {optimizer.lr: 0.1}, label: "lr 0.1"}
    - {select: {optimizer.lr: 0.0001}, label: "lr 0.0001"}
  figures: []
  claims:
    - id: large_lr_helps
      text: "lr 0.1 beats lr 0.0001 by at least 10 points after one epoch"
      test: better
      a: {optimizer.lr: 0.1}
      b: {optimizer.lr: 0.0001}
      metric: val_acc
      epoch: 1
      min_effect: 10
    - id: lr_does_not_matter
      text: "lr 0.0001 is as good as lr 0.1 (±0.5 pp)"
      test: equivalent
      a: {optimizer.lr: 0.0001}
      b: {optimizer.lr: 0.1}
      metric: val_acc
      epoch: last
      margin: 0.5
"""
QUICK = ("act=relu", "norm=bn1", "epochs=1", "data.limit_train=3000", "probe.samples=100", "tracking.figures=false", "threads=1")


def _verdict(text: str, claim: str) -> str:
    row = next(line for line in text.splitlines() if line.startswith("| **") and claim in line)
    return re.search(r"\| \*\*(supported|contradicted|exceeded|inconclusive)\*\*", row).group(1)


def _sweep(cli, tmp_path: Path, name: str, study: str):
    """The study as a file in a config dir outside the package, swept from a launch dir of its own."""
    mine = tmp_path / "elsewhere" / "my_conf"
    (mine / "experiment").mkdir(parents=True)
    (mine / "experiment" / f"{name}.yaml").write_text(study, encoding="utf-8")
    launch = tmp_path / "launch"
    launch.mkdir()
    return mine, launch, cli("-m", "--config-dir", str(mine), f"+experiment={name}", *QUICK, cwd=launch)


def _report(name: str, mine: Path, launch: Path, monkeypatch, capsys) -> str:
    monkeypatch.chdir(launch)
    code = report_main([name, "--config-dir", str(mine), "--out", "reports", "--no-artifacts"])
    assert code == 0, capsys.readouterr().err
    return (launch / "reports" / name / "README.md").read_text(encoding="utf-8")


def test_a_users_own_study_outside_the_package_gets_a_verdict_per_claim(cli, tmp_path, runs_in, monkeypatch, capsys):
    mine, launch, swept = _sweep(cli, tmp_path, "my_lr_question", STUDY)
    assert swept.code == 0, swept.err[-3000:]
    _, runs = runs_in(launch, "my_lr_question")
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert sorted(r.data.params["optimizer.lr"] for r in children) == ["0.0001"] * 3 + ["0.1"] * 3

    text = _report("my_lr_question", mine, launch, monkeypatch, capsys)
    assert text.splitlines()[0].endswith("my own question: does a larger learning rate help after one epoch?")
    assert "no claims configured" not in text
    assert _verdict(text, "lr 0.1 beats lr 0.0001 by at least 10 points") == "supported"
    assert _verdict(text, "is as good as lr 0.1") == "contradicted"
    assert "**Verdicts:**" in text


def test_without_its_config_dir_the_report_says_where_it_looked(tmp_path, monkeypatch, capsys):
    from mlflow import MlflowClient

    MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}").search_experiments()  # a store, without this study
    monkeypatch.chdir(tmp_path)
    code = report_main(["my_lr_question", "--out", "reports"])
    err = capsys.readouterr().err
    assert code == 2
    assert "my_lr_question" in err and "--config-dir" in err
    assert not Path(tmp_path / "reports").exists()


def test_the_readmes_example_study_composes_and_its_claims_load(cli, tmp_path):
    """README "Write your own study" shows a complete file: it must compose through Hydra and its claims load."""
    from bn_study.report.load import experiment_dirs, load_spec

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    section = readme.split("### Write your own study", 1)[1]
    example = section.split("```yaml\n", 1)[1].split("```", 1)[0]
    name = re.search(r"my_conf/experiment/(\w+)\.yaml", example).group(1)
    (tmp_path / "my_conf" / "experiment").mkdir(parents=True)
    (tmp_path / "my_conf" / "experiment" / f"{name}.yaml").write_text(example, encoding="utf-8")
    composed = cli("--config-dir", str(tmp_path / "my_conf"), f"+experiment={name}", "--cfg", "job")
    assert composed.code == 0, composed.err
    assert f"experiment: {name}" in composed.out
    spec = load_spec(name, experiment_dirs([tmp_path / "my_conf"]))
    assert [c.id for c in spec.claims] == ["tanh_bn_speed", "sigmoid_gains_more"]
    assert [p.test for c in spec.claims for p in c.parts] == ["better", "interaction"]


# The grid writes 1.0 where a condition writes 1, and the article's lr 0.01 is the default, so its runs'
# condition does not name it: a claim must still find both, and the tables follow the sweep's order.
AS_WRITTEN = """\
# @package _global_
defaults:
  - override /model: article
  - override /optimizer: sgd
seeds: [0, 1]
tracking:
  experiment: lr_as_written
hydra:
  sweeper:
    params:
      optimizer.lr: 1.0,0.01,0.0001
report:
  title: "lrs as the grid writes them"
  analysis: paired
  figures: []
  claims:
    - id: one_vs_default
      text: "lr 1.0 differs from the default lr after one epoch"
      test: better
      a: {optimizer.lr: 1.0}
      b: {optimizer.lr: 0.01}
      metric: val_acc
      epoch: 1
"""


def test_a_claim_finds_runs_by_the_values_as_the_grid_wrote_them_and_tables_keep_the_sweeps_order(
        cli, tmp_path, monkeypatch, capsys):
    mine, launch, swept = _sweep(cli, tmp_path, "lr_as_written", AS_WRITTEN)
    assert swept.code in (0, 1), swept.err[-3000:]  # lr 1.0 may diverge: a failed run is still a run
    text = _report("lr_as_written", mine, launch, monkeypatch, capsys)
    claim = next(line for line in text.splitlines() if line.startswith("| **") and "lr 1.0 differs" in line)
    assert "not in this sweep" not in claim and "n=2" in claim, claim
    table = text.split("## Final metrics", 1)[1]
    rows = [line for line in table.splitlines() if line.startswith("| ") and "epochs=1" in line]
    assert len(rows) == 3, rows
    assert "optimizer.lr=1 " in rows[0] and "optimizer.lr" not in rows[1] and "optimizer.lr=0.0001" in rows[2], rows
