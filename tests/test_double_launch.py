"""N launchers of one grid share it: two identical commands started together (into one launch dir, even one
sweep dir, on a store neither has made yet) train each member exactly once and both end with the whole
summary — real processes, real concurrency. The PostgreSQL-backed server's case is in test_scale_out."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

GRID = ["-m", "norm=none,bn1", "act=sigmoid,relu", "epochs=2", "data.limit_train=3000", "probe.enabled=false",
        "tracking.figures=false", "progress=false"]


def start_together(cwds: list[Path], args: list[str], env: dict[str, str] | None = None) -> list[str]:
    """Start one ``python -m bn_study ARGS`` in each of ``cwds`` at once (one dir twice: two launches in one
    place; two dirs: two machines); their merged outputs, each asserted exit 0 with no traceback."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    procs = [subprocess.Popen([sys.executable, "-m", "bn_study", *args], cwd=cwd, env=env, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT) for cwd in cwds]
    outs = [p.communicate(timeout=900)[0] for p in procs]
    for p, out in zip(procs, outs):
        assert p.returncode == 0, out[-4000:]
        assert "Traceback" not in out, out[-4000:]
    return outs


def summary_rows(out: str) -> dict[str, str]:
    """The summary table's job number → objective column, read off the terminal output (a long condition
    may fold onto a second line; its first line has the number)."""
    rows = re.findall(r"│ (\d+) │ [^│]*│ (\w+)\s+│ ([\d.]*)\s+│", out)
    return {job: objective for job, status, objective in rows}


def assert_each_member_trained_once(where: str | Path, runs_in, experiment: str = "bn_study",
                                    members: int = 4, epochs: int = 2) -> None:
    client, runs = runs_in(where, experiment)
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(children) == members, [r.data.tags.get("condition") for r in children]
    assert Counter(r.data.tags["config_hash"] for r in children).most_common(1)[0][1] == 1
    assert [r.info.status for r in runs if r.info.status != "FINISHED"] == []  # nothing RUNNING, nothing lost
    for child in children:  # never two writers in one run: each epoch once
        assert [m.step for m in client.get_metric_history(child.info.run_id, "val_acc")] == list(range(1, epochs + 1))


def test_two_identical_grids_at_once_into_one_sweep_dir_and_a_fresh_store(tmp_path, runs_in):
    # the worst case: the same second gives both Hydra's same sweep dir; an empty cache makes both build the
    # store with MLflow's migrations (the "duplicate column name" crash)
    outs = start_together([tmp_path, tmp_path], [*GRID, "hydra.sweep.dir=multirun/same"],
                          env={"XDG_CACHE_HOME": str(tmp_path / "empty-cache")})
    assert_each_member_trained_once(tmp_path, runs_in)
    first, second = (summary_rows(out) for out in outs)
    assert len(first) == 4 and first == second  # both summaries whole, with the same objectives
    assert all(float(v) > 0 for v in first.values())
    assert "trained by another launch" in outs[0] + outs[1]  # they did meet: one deferred to the other
    # each sweep's parent shows its own trained children and links the ones the other trained
    client, runs = runs_in(tmp_path)
    parents = [r for r in runs if r.data.tags.get("role") == "multirun parent"]
    assert len(parents) == 2
    for parent in parents:
        pid = parent.info.run_id
        own = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == pid]
        linked = [r for r in runs if r.data.tags.get(f"reused_in.{pid}") == "true"]
        assert len(own) + len(linked) == 4
        if linked:  # and its description says where they are
            assert f"tags.`reused_in.{pid}` = 'true'" in parent.data.tags["mlflow.note.content"]
