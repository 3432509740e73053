"""Owners that died where a pid cannot be checked — another host — are known by their silence, and a joblib
worker dies with its sweep: real processes, a real ``kill -9``, another host made with a UTS namespace."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kills import kill_when_store_has, launch

RUNNING_CHILD = ("SELECT count(*) FROM runs r JOIN tags t ON t.run_uuid = r.run_uuid "
                 "AND t.key = 'mlflow.parentRunId' WHERE r.status = 'RUNNING'")
QUICK_BEATS = ["tracking.heartbeat_seconds=1", "tracking.stale_after_seconds=30"]  # past a restart's imports


def _on_another_host(cwd: Path, args: list[str]) -> subprocess.Popen:
    """``python -m bn_study ARGS`` as if on the machine "otherbox": its own hostname (a UTS namespace), the
    same launch dir and store — as two machines sharing a network drive or a tracking server."""
    if os.geteuid() != 0 or not shutil.which("unshare"):
        pytest.skip("a second hostname needs root and unshare (util-linux)")
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    command = " ".join([sys.executable, "-m", "bn_study", *args])
    return subprocess.Popen(["unshare", "-u", "sh", "-c", f"hostname otherbox && exec {command}"], cwd=cwd,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def test_a_launch_killed_on_another_host_is_taken_over_once_it_falls_silent(tmp_path, runs_in):
    grid = ["-m", "norm=bn1", "act=relu", "epochs=2", "data.limit_train=10000", "probe.enabled=false",
            "tracking.figures=false", "progress=false", *QUICK_BEATS]
    other = _on_another_host(tmp_path, grid)
    kill_when_store_has(other, tmp_path / "mlflow.db", RUNNING_CHILD)  # its member run exists, it trains
    _, before = runs_in(tmp_path)
    assert {r.data.tags["owner"].split(":")[0] for r in before} == {"otherbox"}

    again = subprocess.run([sys.executable, "-m", "bn_study", *grid], cwd=tmp_path, capture_output=True, text=True,
                           timeout=600)
    out = again.stdout + again.stderr
    assert again.returncode == 0, out[-4000:]
    # it did not train beside the other host's claim while that still beat: it waited for the silence
    assert "waiting: another launch (process" in out and "on otherbox" in out
    client, runs = runs_in(tmp_path)
    assert [r.info.status for r in runs if r.info.status == "RUNNING"] == []
    members = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    finished = [r for r in members if r.info.status == "FINISHED"]
    assert len(finished) == 1
    assert [m.step for m in client.get_metric_history(finished[0].info.run_id, "val_acc")] == [1, 2]
    for r in runs:  # the other host's member (unless continued from its checkpoint) and parent: closed, saying why
        if r.data.tags["owner"].startswith("otherbox:") and r.info.status != "FINISHED":
            assert r.info.status == "KILLED" and "on otherbox is gone" in r.data.tags["failure_reason"]
    parents = [r for r in runs if r.data.tags.get("role") == "multirun parent"]
    assert sorted(p.info.status for p in parents) == ["FINISHED", "KILLED"]


def _loky_workers(parent: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            cmdline = (stat.parent / "cmdline").read_bytes()
        except OSError:
            continue
        if int(fields[1]) == parent and b"loky" in cmdline and b"resource_tracker" not in cmdline:
            found.append(int(stat.parent.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_joblib_workers_die_with_their_sweep_and_the_rerun_trains_each_member_once(tmp_path, runs_in):
    grid = ["-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "norm=none,bn1", "act=relu", "epochs=3",
            "data.limit_train=20000", "probe.enabled=false", "tracking.figures=false", "progress=false", "threads=1",
            *QUICK_BEATS]
    sweep = launch(tmp_path, grid)
    deadline = time.monotonic() + 300
    workers: list[int] = []
    while len(workers) < 2 and time.monotonic() < deadline:
        workers = _loky_workers(sweep.pid)
        time.sleep(0.1)
    assert len(workers) == 2, "the joblib launcher never started its two workers"
    kill_when_store_has(sweep, tmp_path / "mlflow.db", RUNNING_CHILD.replace("count(*)", "count(*) >= 2"))
    killed_at = time.monotonic()
    while any(_alive(w) for w in workers) and time.monotonic() - killed_at < 30:
        time.sleep(0.1)
    lived = time.monotonic() - killed_at
    assert not any(_alive(w) for w in workers), "the workers of a killed sweep trained on"
    assert lived < 10

    again = subprocess.run([sys.executable, "-m", "bn_study", *grid], cwd=tmp_path, capture_output=True, text=True,
                           timeout=600)
    assert again.returncode == 0, (again.stdout + again.stderr)[-4000:]
    client, runs = runs_in(tmp_path)
    assert [r.info.status for r in runs if r.info.status == "RUNNING"] == []
    members = [r for r in runs if "mlflow.parentRunId" in r.data.tags and r.info.status == "FINISHED"]
    assert sorted(r.data.tags["condition"] for r in members) == ["act=relu data.limit_train=20000 epochs=3",
                                                                 "act=relu norm=bn1 data.limit_train=20000 epochs=3"]
    for r in members:
        assert [m.step for m in client.get_metric_history(r.info.run_id, "val_acc")] == [1, 2, 3]
