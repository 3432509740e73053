"""The grid's parent run carries the result: per condition the seeds, the objective's mean ± 95 % CI and
finished/failed, in its description, as a table artifact and as metrics; every child says what it is; the
experiment opens in the UI's model-training view."""

from __future__ import annotations

import json
import math
from pathlib import Path

from scipy import stats

QUICK = ("epochs=1", "data.limit_train=300", "probe.enabled=false", "tracking.figures=false", "threads=1")


def test_the_parent_run_holds_the_sweeps_summary(cli, tmp_path, runs_in):
    result = cli("-m", "norm=none,bn1", "seeds=[0,1,2]", *QUICK)
    assert result.code == 0, result.err[-2000:]
    client, runs = runs_in(tmp_path)
    [parent] = [r for r in runs if r.data.tags.get("role") == "multirun parent"]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert len(children) == 6
    by_condition: dict[str, list[float]] = {}
    for r in children:
        by_condition.setdefault(r.data.tags["condition"], []).append(r.data.metrics["val_acc"])
    assert sorted(by_condition) == ["data.limit_train=300 epochs=1", "norm=bn1 data.limit_train=300 epochs=1"]

    expected = {}
    for condition, values in by_condition.items():
        mean = sum(values) / 3
        half = stats.t.ppf(0.975, 2) * stats.tstd(values) / math.sqrt(3)
        expected[condition] = (mean, half)
        key = condition.replace("=", ":")
        assert math.isclose(parent.data.metrics[f"val_acc_mean/{key}"], mean, rel_tol=1e-12)
        assert math.isclose(parent.data.metrics[f"val_acc_ci95/{key}"], half, rel_tol=1e-9)

    note = parent.data.tags["mlflow.note.content"]
    for condition, (mean, half) in expected.items():
        assert f"| `{condition}` | 0,1,2 | {mean:.4f} ± {half:.4f} | 3 | 0 |" in note
    best = max(expected, key=lambda c: expected[c][0])
    assert f"Best: `{best}` — {expected[best][0]:.4f} ± {expected[best][1]:.4f}." in note
    # what a condition leaves out is said once: the defaults of the settings the conditions name
    assert "has its default: `data.limit_train=null epochs=10 norm=none`." in note

    path = Path(client.download_artifacts(parent.info.run_id, "summary.json", str(tmp_path / "dl")))
    table = json.loads(path.read_text())
    rows = {row[0]: dict(zip(table["columns"], row)) for row in table["data"]}
    assert set(rows) == set(expected)
    for condition, (mean, half) in expected.items():
        assert rows[condition]["val_acc mean"] == round(mean, 4) and rows[condition]["95 % CI ±"] == round(half, 4)
        assert rows[condition]["seeds"] == "0,1,2" and (rows[condition]["finished"], rows[condition]["failed"]) == (3, 0)

    for r in children:  # each child says what it is, in full
        text = r.data.tags["mlflow.note.content"]
        assert text.startswith(f"One run of a multirun (its parent run holds the sweep's summary), seed {r.data.tags['seed']}.")
        assert f"`{r.data.tags['condition']}`" in text
        assert r.info.run_name == f"{r.data.tags['condition']} seed={r.data.tags['seed']}"
    assert client.get_experiment(parent.info.experiment_id).tags["mlflow.experimentKind"] == "custom_model_development"
