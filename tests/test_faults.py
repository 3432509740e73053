"""Bad state around a run: an unwritable or unreachable store, a tracking server that dies mid-run,
a full artifact disk, a lock left by a killed process."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from mlflow import MlflowClient

from bn_study.data import ensure_raw
from bn_study.errors import UserError

QUICK = ["data.limit_train=500", "epochs=1", "probe.enabled=false", "tracking.figures=false"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unwritable_mlflow_db_is_refused_before_anything_runs(cli, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    result = cli(f"tracking.uri=sqlite:///{blocker}/mlflow.db", *QUICK)
    assert result.code == 2
    assert "cannot be written" in result.err and "tracking.uri" in result.err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file"]


def test_tracking_server_down_at_start_is_refused_before_training(cli, tmp_path):
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


def test_tracking_server_down_mid_run_buffers_and_retries(tmp_path):
    port = free_port()
    server = start_mlflow_server(tmp_path, port)
    uri = f"http://127.0.0.1:{port}"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    job = subprocess.Popen(
        [sys.executable, "-m", "bn_study", f"tracking.uri={uri}", "data.limit_train=6000", "epochs=5",
         "batch_size=32", "probe.enabled=false", "tracking.retry_seconds=120"],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = []
    try:
        for line in job.stdout:
            lines.append(line)
            if "epoch 1/5" in line:
                os.killpg(server.pid, signal.SIGKILL)  # the server dies while the job trains on
                break
        time.sleep(4)
        server = start_mlflow_server(tmp_path, port)  # and comes back on the same store
        lines += job.stdout.readlines()
        assert job.wait(timeout=300) == 0, "".join(lines)
        client = MlflowClient(uri)
        [run] = client.search_runs([client.get_experiment_by_name("bn_study").experiment_id])
        assert run.info.status == "FINISHED"
        assert [m.step for m in client.get_metric_history(run.info.run_id, "val_acc")] == [1, 2, 3, 4, 5]
        assert len(client.get_metric_history(run.info.run_id, "step_loss")) == 5 * 188 // 50
        assert {a.path for a in client.list_artifacts(run.info.run_id)} >= {"config.yaml", "curves.png"}
    finally:
        job.kill()
        os.killpg(server.pid, signal.SIGKILL)


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
    tic = time.monotonic()
    with pytest.raises(UserError, match="could not get mnist"):
        ensure_raw("mnist", root, ("local",))  # takes the lock, finds no files: an answer, not a wait
    assert time.monotonic() - tic < 5
