"""Checkpoints that cannot continue their job — other shapes, an epoch past the end, another code version —
are discarded with one warning line, their stale run closed as KILLED, and the job trains again from the
start (a real kill -9, a real rerun); temp files of writes that died are removed."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import torch
from kills import kill_at_line, launch as launch_in
from mlflow import MlflowClient

from bn_study.train.checkpoint import Checkpoint
from bn_study.util.atomic import remove_stale_temps

ARGS = ["-m", "seed=0", "epochs=4", "data.limit_train=12000", "act=relu", "batch_size=64", "probe.enabled=false",
        "tracking.figures=false", "log_every=50"]


def launch(tmp_path: Path) -> subprocess.Popen:
    return launch_in(tmp_path, ARGS)


def killed_after_first_epoch(tmp_path: Path) -> Path:
    kill_at_line(launch(tmp_path), "epoch 1/4")
    (saved,) = (tmp_path / "checkpoints").glob("*.pt")
    return saved


def tamper(path: Path, how: str) -> str:
    payload = torch.load(path, weights_only=True)
    if how == "shapes":  # the code changed the layer sizes, the config hash did not see it
        key = next(k for k in payload["net"] if k.endswith("weight"))
        payload["net"][key] = torch.zeros(*[d + 1 for d in payload["net"][key].shape])
        reason = "its model has other shapes"
    elif how == "past_the_end":
        payload["epoch"] = 9
        reason = "it holds epoch 9 of a 4-epoch run"
    else:  # a checkpoint written by another version of the code
        payload.pop("format", None)
        reason = "it is of another code version"
    torch.save(payload, path)
    return reason


def job_runs(runs_in, tmp_path: Path) -> tuple[MlflowClient, list]:
    client, found = runs_in(tmp_path)
    return client, [r for r in found if r.data.tags.get("role") != "multirun parent"]


@pytest.mark.parametrize("how", ["shapes", "past_the_end", "other_version"])
def test_a_checkpoint_that_does_not_fit_is_discarded_and_the_job_trains_again(tmp_path: Path, how: str,
                                                                               runs_in) -> None:
    saved = killed_after_first_epoch(tmp_path)
    reason = tamper(saved, how)
    _, before = job_runs(runs_in, tmp_path)
    (stale,) = before
    assert stale.info.status == "RUNNING"
    again = launch(tmp_path)
    out, _ = again.communicate(timeout=600)
    assert again.returncode == 0, out[-3000:]
    warnings = [ln for ln in out.splitlines() if "discarding the checkpoint" in ln]
    assert len(warnings) == 1 and reason in warnings[0] and stale.info.run_id in warnings[0]
    assert "Traceback" not in out and "resuming from the checkpoint" not in out
    client, after = job_runs(runs_in, tmp_path)
    closed = client.get_run(stale.info.run_id)
    assert closed.info.status == "KILLED" and closed.data.tags["failure_reason"].startswith(
        f"checkpoint discarded: {reason}")
    (fresh,) = [r for r in after if r.info.run_id != stale.info.run_id]
    assert fresh.info.status == "FINISHED"
    assert [m.step for m in client.get_metric_history(fresh.info.run_id, "val_acc")] == [1, 2, 3, 4]
    assert not [r for r in after if r.info.status == "RUNNING"]
    assert not (tmp_path / "checkpoints").exists()


def test_temp_files_of_dead_writers_are_removed_and_live_ones_kept(tmp_path: Path) -> None:
    dead = _a_dead_pid()
    target = tmp_path / "abc.pt"
    left = tmp_path / f".abc.pt.{dead}.deadbeef.tmp"
    mine = tmp_path / f".abc.pt.{os.getpid()}.cafe0001.tmp"
    other = tmp_path / f".other.pt.{dead}.deadbeef.tmp"
    for p in (left, mine, other):
        p.write_bytes(b"half a checkpoint")
    assert remove_stale_temps(target) == [left]
    assert mine.exists() and other.exists()
    Checkpoint(tmp_path, "other").load()  # loading (or saving) a checkpoint sweeps its own leftovers
    assert not other.exists()


def _a_dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid
