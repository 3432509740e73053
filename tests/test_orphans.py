"""Runs a killed launch left RUNNING are closed by the next launch that meets them (a real kill -9, a real
rerun): KILLED with the reason, the member trained again — never a second run beside a RUNNING one — and the
killed sweep's parent closed too. Runs of live processes are left alone."""

from __future__ import annotations

import subprocess
from pathlib import Path

from kills import kill_when_store_has, launch as launch_in

from bn_study.tracking.owner import owner_gone, this_owner

ARGS = ["-m", "seed=0", "epochs=2", "data.limit_train=20000", "act=relu", "probe.enabled=false",
        "tracking.figures=false", "log_every=50"]


def launch(tmp_path: Path) -> subprocess.Popen:
    return launch_in(tmp_path, ARGS)


def killed_once_its_run_exists(tmp_path: Path) -> None:
    """kill -9 as soon as the member run is in the store: before the first epoch, so no checkpoint."""
    kill_when_store_has(launch(tmp_path), tmp_path / "mlflow.db", "SELECT count(*) FROM tags WHERE key = 'config_hash'")


def test_a_run_killed_before_its_first_checkpoint_is_closed_and_trained_again(tmp_path: Path, runs_in) -> None:
    killed_once_its_run_exists(tmp_path)
    assert not list((tmp_path / "checkpoints").glob("*.pt"))
    client, before = runs_in(tmp_path)
    assert sorted(r.info.status for r in before) == ["RUNNING", "RUNNING"]  # the parent and its member
    again = launch(tmp_path)
    out, _ = again.communicate(timeout=600)
    assert again.returncode == 0, out[-3000:]
    after = {r.info.run_id: r for r in runs_in(tmp_path)[1]}
    for old in before:
        closed = after[old.info.run_id]
        assert closed.info.status == "KILLED" and "(its process " in closed.data.tags["failure_reason"]
    members = [r for r in after.values() if r.data.tags.get("role") != "multirun parent"]
    assert sorted(r.info.status for r in members) == ["FINISHED", "KILLED"]  # one result for the one member
    assert not [r for r in after.values() if r.info.status == "RUNNING"]
    assert out.count("left RUNNING by a process that is gone") == 2  # the member, then (in the sweep) the parent


def test_runs_of_live_processes_and_other_hosts_are_not_orphans() -> None:
    assert not owner_gone(this_owner())
    host, pid, ticks = this_owner().rsplit(":", 2)
    assert owner_gone(f"{host}:{pid}:{int(ticks) + 1}")  # the pid reused by a later process
    assert not owner_gone(f"another-host:{pid}:1")  # cannot tell from here: left alone
    assert not owner_gone(None) and not owner_gone("garbage")
    dead = subprocess.Popen(["true"])
    dead.wait()
    assert owner_gone(f"{host}:{dead.pid}:1")
