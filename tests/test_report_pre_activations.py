"""The report's pre-activation figure (the BatchNorm paper's figure 1) from a real sweep: the shipped
bn_position study, tiny, through the real entry point; the figure's series are the probe's logged numbers."""

from __future__ import annotations

from bn_study.report.__main__ import main as report_main
from bn_study.report.build import draw_figures
from bn_study.report.collect import collect, group, open_store
from bn_study.report.load import load_spec
from bn_study.report.figures import pre_activation_rows

SWEEP = ("-m", "+experiment=bn_position", "seeds=[0,1]", "epochs=1", "data.limit_train=1000", "probe.samples=100",
         "probe.every_steps=2", "probe.units=2", "tracking.figures=false", "threads=1")


def test_the_pre_activation_figure_shows_each_conditions_lowest_seed_as_logged(cli, tmp_path, runs_in, monkeypatch,
                                                                                capsys):
    swept = cli(*SWEEP)
    assert swept.code == 0, swept.err[-3000:]
    client, runs = runs_in(tmp_path, "bn_position")
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(children) == 6

    spec = load_spec("bn_position")
    conditions = group(collect(open_store(f"sqlite:///{tmp_path / 'mlflow.db'}"), "bn_position"), spec)
    [figure] = [f for f in spec.figures if f.kind == "pre_activations"]
    rows = pre_activation_rows(figure, conditions)
    assert list(rows) == ["no BN (seed 0)", "BN after the activation (the article) (seed 0)",
                          "BN before the activation (the paper) (seed 0)"]
    by_norm = {r.data.params["norm.kind"] + r.data.params["norm.position"]: r for r in children
               if r.data.tags["seed"] == "0"}
    for row, key in zip(rows.values(), ("noneafter", "batchafter", "batchbefore")):
        run = by_norm[key]
        assert list(row) == ["act1", "act2", "act3", "act4"]
        # 8 steps (1 000 images, batch 128), a look every 2 from step 0; 2 units per layer (of 512: 128 and 384)
        assert list(row["act1"]) == [128, 384]
        for pct, series in zip((15, 50, 85), ("p15", "p50", "p85")):
            logged = client.get_metric_history(run.info.run_id, f"act1_pre_u128_p{pct}")
            assert [(m.step, m.value) for m in sorted(logged, key=lambda m: m.step)] == list(
                zip(row["act1"][128].steps, getattr(row["act1"][128], series)))
        assert row["act1"][128].steps == [0, 2, 4, 6, 8]
    # with BN before the activation the first sigmoid's input is normalised over the batch: its median sits
    # near 0 at every look; without BN it is the Linear's raw output
    before = rows["BN before the activation (the paper) (seed 0)"]["act1"]
    assert all(abs(v) < 0.5 for u in before.values() for v in u.p50)

    monkeypatch.chdir(tmp_path)
    assert report_main(["bn_position", "--out", "reports", "--no-artifacts"]) == 0, capsys.readouterr().err
    out = tmp_path / "reports" / "bn_position"
    assert (out / "preactivations.png").stat().st_size > 1000
    text = (out / "README.md").read_text(encoding="utf-8")
    assert "![the input to each sigmoid during training](preactivations.png)" in text
    assert "15th, 50th and 85th percentiles" in text


def test_without_probe_looks_the_figure_is_left_out(cli, tmp_path):
    swept = cli(*SWEEP[:-4], "probe.every_steps=null", "tracking.figures=false", "threads=1")
    assert swept.code == 0, swept.err[-3000:]
    spec = load_spec("bn_position")
    conditions = group(collect(open_store(f"sqlite:///{tmp_path / 'mlflow.db'}"), "bn_position"), spec)
    (tmp_path / "out").mkdir()
    entries = draw_figures(spec, conditions, tmp_path / "out")
    assert [e.file for e in entries] == ["curves.png"]
