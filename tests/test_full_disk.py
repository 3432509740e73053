"""A launch dir on a disk that fills up (a real tmpfs, real processes): one line per job, runs FAILED with the
reason, nothing half-written, and the same command resumes once there is room; a read-only one is refused."""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
from collections import Counter
from pathlib import Path

import torch
from kills import launch
from mlflow import MlflowClient
from test_faults import output_when_the_server_dies, start_mlflow_server

GRID = ["-m", "norm=none,bn1", "epochs=2", "data.limit_train=500", "probe.enabled=false", "tracking.figures=false",
        "log_every=2"]
# what a job says when a checkpoint does not fit: the file, the reason, what is kept, what became of its run
CHECKPOINT_FULL = re.compile(r"^\[[^]]+\]\[bn_study\]\[ERROR\] - cannot write the checkpoint of epoch (\d) to (\S+): "
                             r"No space left on device \((.+)\); run (\w+) FAILED$", re.MULTILINE)


def run_grid(cwd: Path) -> tuple[int, str]:
    job = launch(cwd, GRID)
    out, _ = job.communicate(timeout=300)
    return job.returncode, out


def assert_nothing_half_written(root: Path) -> None:
    """No empty file, no temp file of a write that failed, and every checkpoint and store readable whole."""
    for path in root.rglob("*"):
        if path.is_file():
            assert path.stat().st_size > 0, f"{path} is empty"
            assert not path.name.endswith(".tmp"), f"{path} is a write's temp file left behind"
            if path.suffix == ".pt":
                assert torch.load(path, weights_only=True)["epoch"] >= 1
            if path.name == "mlflow.db":
                with sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True) as con:
                    assert con.execute("PRAGMA integrity_check").fetchone() == ("ok",)


def fill_the_grid_disk(launch_dir: Path, runs_in) -> tuple[str, str]:
    """The grid on a 9 MB launch dir: the first job's epoch-1 checkpoint fits and its epoch-2 one does not, the
    second job's first does not. Returns the run ids of the two jobs."""
    code, out = run_grid(launch_dir)
    assert code == 1, out[-3000:]
    assert "Traceback" not in out and "\n2 jobs: 2 crashed" in out, out[-3000:]
    said = CHECKPOINT_FULL.findall(out)
    errors = [line for line in out.splitlines() if "[bn_study][ERROR]" in line]
    assert len(said) == len(errors) == 2, "\n".join(errors) or out[-3000:]  # one line per job, nothing else
    (epoch_a, path_a, kept_a, run_a), (epoch_b, path_b, kept_b, run_b) = said
    assert (epoch_a, epoch_b) == ("2", "1")
    assert kept_a == "the checkpoint of epoch 1 is kept: after freeing space the same command resumes from it"
    assert kept_b == "no earlier checkpoint: the same command trains it again"
    assert Path(path_a).parent == Path(path_b).parent == launch_dir / "checkpoints"
    assert [p.name for p in (launch_dir / "checkpoints").iterdir()] == [Path(path_a).name]
    assert torch.load(path_a, weights_only=True)["epoch"] == 1  # the previous checkpoint, intact
    assert_nothing_half_written(launch_dir)
    _, runs = runs_in(launch_dir)
    status = {r.info.run_id: r.info.status for r in runs}
    assert sorted(status.values()) == ["FAILED"] * 3  # the parent and both children: none left RUNNING
    for r in runs:
        if r.info.run_id in (run_a, run_b):
            assert r.data.tags["outcome"] == "crashed"
            assert r.data.tags["failure_reason"].startswith("cannot write the checkpoint of epoch ")
            assert "No space left on device" in r.data.tags["failure_reason"]
    return run_a, run_b


def test_a_grid_on_a_full_launch_dir_fails_each_job_in_one_line_and_resumes_once_there_is_room(tmpfs, tmp_path,
                                                                                                runs_in):
    launch_dir = tmpfs(tmp_path / "launch", "9m")
    resumed, trained_again = fill_the_grid_disk(launch_dir, runs_in)
    # room again: the same command
    tmpfs.resize(launch_dir, "200m")
    code, out = run_grid(launch_dir)
    assert code == 0 and "Traceback" not in out, out[-3000:]
    assert out.count(f"resuming from the checkpoint after epoch 1 ({launch_dir / 'checkpoints'}") == 1, out[-3000:]
    client, runs = runs_in(launch_dir)
    assert not [r for r in runs if r.info.status == "RUNNING"]
    children = [r for r in runs if "config_hash" in r.data.tags]
    finished = Counter(r.data.tags["config_hash"] for r in children if r.info.status == "FINISHED")
    assert sorted(finished.values()) == [1, 1]  # one result per member
    by_id = {r.info.run_id: r for r in children}
    assert by_id[resumed].info.status == "FINISHED"  # continued into the same run, after epoch 1
    # the job with no checkpoint kept its failed attempt as it was and trained again into a new run
    assert by_id[trained_again].info.status == "FAILED" and len(children) == 3
    step_losses = []
    for r in children:
        if r.info.status == "FINISHED":
            assert [m.step for m in client.get_metric_history(r.info.run_id, "val_acc")] == [1, 2]
            step_losses.append(sorted(m.step for m in client.get_metric_history(r.info.run_id, "step_loss")))
    # the resumed run has each step once, as many as the run trained in one go
    assert step_losses[0] == step_losses[1] == sorted(set(step_losses[0])) and len(step_losses[0]) >= 2
    assert not (launch_dir / "checkpoints").exists()  # both jobs ended: their checkpoints are gone
    assert_nothing_half_written(launch_dir)


def test_unsent_metrics_go_to_tmpdir_when_the_launch_dir_is_full(tmpfs, tmp_path, free_port, monkeypatch):
    """The tracking server dies after epoch 1 and stays dead; the launch dir, where unsent_metrics_<run>.json
    goes, is full: the file lands in $TMPDIR with every value the server did not take, and the line says so."""
    launch_dir = tmpfs(tmp_path / "launch", "64k")
    subprocess.run(["dd", "if=/dev/zero", f"of={launch_dir / 'filler'}", "bs=1k", "count=128"], capture_output=True)
    roomy, tmpdir = tmp_path / "roomy", tmp_path / "tmp"
    roomy.mkdir()
    tmpdir.mkdir()
    monkeypatch.setenv("TMPDIR", str(tmpdir))
    port = free_port()
    server = start_mlflow_server(roomy, port)
    epochs, log_every, train = 2, 25, 1600
    job = launch(launch_dir, [f"tracking.uri=http://127.0.0.1:{port}", f"data.limit_train={train}", f"epochs={epochs}",
                              "batch_size=32", f"log_every={log_every}", "probe.enabled=false",
                              "tracking.figures=false", "tracking.retry_seconds=1", f"hydra.run.dir={roomy / 'run'}",
                              f"checkpoint_dir={roomy / 'checkpoints'}"])  # only the launch dir is full
    out = output_when_the_server_dies(job, server, epochs)
    said = re.search(r"^error: the tracking store did not take (\d+) metric values of run (\w+) within 1 s; they are "
                     r"saved in (\S+) \(not in (\S+): No space left on device\)$", out, re.MULTILINE)
    assert said and "Traceback" not in out, out[-3000:]
    count, run_id, path = int(said.group(1)), said.group(2), Path(said.group(3))
    assert path == tmpdir / f"unsent_metrics_{run_id}.json" and Path(said.group(4)) == launch_dir
    assert sorted(p.name for p in launch_dir.iterdir()) == ["filler"]  # no empty or partial file where it failed
    assert [p.name for p in tmpdir.glob("*unsent_metrics*")] == [path.name]  # and no temp file where it went
    saved = json.loads(path.read_text())
    assert saved["run_id"] == run_id and len(saved["metrics"]) == count
    unsent = Counter((m["key"], m["step"]) for m in saved["metrics"])
    dead = MlflowClient(f"sqlite:///{roomy / 'server.db'}")
    per_epoch = ("train_loss", "train_acc", "val_loss", "val_acc", "epoch_seconds", "steps")
    expected = {(k, e) for k in per_epoch for e in range(1, epochs + 1)} | {("test_loss", epochs), ("test_acc", epochs)}
    expected |= {("step_loss", s) for s in range(log_every, epochs * train // 32 + 1, log_every)}
    sent = Counter((m.key, m.step) for key in {k for k, _ in expected} for m in dead.get_metric_history(run_id, key))
    assert max(unsent.values()) == 1 and not set(sent) & set(unsent)
    assert set(sent) | set(unsent) == expected  # every value the run logged: in the store or in the file


def test_a_read_only_launch_dir_is_refused_before_anything_is_written(tmp_path, read_only):
    launch_dir = tmp_path / "launch"
    launch_dir.mkdir()
    read_only(launch_dir)
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    done = subprocess.run([sys.executable, "-m", "bn_study", *GRID], cwd=launch_dir, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 2, done.stderr[-3000:]
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("error: job #0 "), done.stderr
    assert f"this user may not write in {launch_dir} " in done.stderr
    read_only.undo(launch_dir)
    assert list(launch_dir.iterdir()) == []
