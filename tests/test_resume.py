"""Sweeps that survive: a killed multirun resumes without twins, failures stay isolated, parallel
jobs on one sqlite store lose nothing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from kills import launch

SMALL = ["data.limit_train=1000", "probe.enabled=false", "tracking.figures=false", "log_every=5"]


def bn_study(launch_dir: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.run([sys.executable, "-m", "bn_study", *args], cwd=launch_dir, env=env, capture_output=True,
                          text=True, timeout=timeout)


def children(runs_in, launch_dir: Path):
    """The store's member runs (those of a multirun parent), and its client."""
    client, runs = runs_in(launch_dir)
    return client, [r for r in runs if "mlflow.parentRunId" in r.data.tags]


def test_killed_multirun_resumes_the_interrupted_job_and_skips_finished_ones(tmp_path, runs_in):
    # job #2 (the third) walks 12 000 images per epoch, the others a few hundred: a wide window to kill it in
    # threads pinned: the resumed job's numbers are compared with an uninterrupted run's, bit for bit; the
    # pre-activation probe on (BN before the activation: its looks run BN on their own batch), on a light batch
    args = ["-m", "data.limit_train=300,400,12000,500", "act=relu", "norm=bn1", "norm.position=before", "epochs=5",
            "batch_size=64", "probe.samples=100", "probe.every_steps=40", "probe.units=1", "tracking.figures=false",
            "log_every=50", "threads=1"]
    proc = launch(tmp_path, args)
    third_job_started = False
    killed_during = None
    for line in proc.stdout:
        if "#2 :" in line:
            third_job_started = True
        if third_job_started and "epoch 1/5" in line:  # job 3 has checkpointed at least one epoch
            killed_during = line
            proc.send_signal(signal.SIGKILL)
            break
    proc.wait(timeout=60)
    assert killed_during is not None, "job 3 never finished an epoch"
    assert proc.returncode == -signal.SIGKILL
    client, before = children(runs_in, tmp_path)
    assert sorted(r.info.status for r in before) == ["FINISHED", "FINISHED", "RUNNING"]
    interrupted = next(r for r in before if r.info.status == "RUNNING")
    assert list((tmp_path / "checkpoints").glob("*.pt")), "the interrupted job left no checkpoint"

    again = bn_study(tmp_path, *args)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "resuming from the checkpoint after epoch" in again.stdout
    assert again.stdout.count("skipped: every seed of this job already has a result in MLflow") == 2
    assert "4 jobs: 1 finished, 1 resumed, 2 skipped" in again.stdout
    client, after = children(runs_in, tmp_path)
    assert len(after) == 4 and all(r.info.status == "FINISHED" for r in after)
    assert len({r.data.tags["config_hash"] for r in after}) == 4  # no twins
    resumed = client.get_run(interrupted.info.run_id)
    assert resumed.info.status == "FINISHED" and resumed.data.tags["resumed"] == "true"
    epochs = [m.step for m in client.get_metric_history(resumed.info.run_id, "val_acc")]
    assert epochs == [1, 2, 3, 4, 5]  # each epoch logged exactly once across the two processes
    steps = [m.step for m in client.get_metric_history(resumed.info.run_id, "step_loss")]
    assert steps == sorted(set(steps))
    pre = sorted(k for k in resumed.data.metrics if "_pre_" in k)
    assert len(pre) == 4 * 1 * 3  # layers × units × percentiles
    for key in pre:  # 12000/64 → 188 steps per epoch, a look every 40th from step 0: each logged exactly once
        assert sorted(m.step for m in client.get_metric_history(resumed.info.run_id, key)) == list(range(0, 941, 40))
    assert not (tmp_path / "checkpoints").exists()  # cleaned up, directory and all, once the jobs finished
    # the second sweep's results include the runs it skipped or continued (the report reads them from there)
    parents = [r for r in runs_in(tmp_path)[1] if r.data.tags.get("role") == "multirun parent"]
    second_parent = next(r for r in parents if r.info.run_id not in
                         {b.data.tags["mlflow.parentRunId"] for b in before})
    reused = [r for r in after if r.data.tags.get(f"reused_in.{second_parent.info.run_id}") == "true"]
    assert len(reused) == 3  # two skipped, one continued

    fresh = bn_study(tmp_path, *args, "resume=false")
    assert fresh.returncode == 0
    _, twice = children(runs_in, tmp_path)
    assert len(twice) == 8  # resume=false trains everything again
    # the killed-and-continued run learned exactly what one uninterrupted run of its config learns: the
    # weights, BN statistics, optimizer state and shuffle order all came back, not just the epoch counter
    [uninterrupted] = [r for r in twice if r.info.run_id not in {a.info.run_id for a in after}
                       and r.data.tags["config_hash"] == resumed.data.tags["config_hash"]]
    for key in ("train_loss", "train_acc", "val_loss", "val_acc", "step_loss", *pre):
        got = [(m.step, m.value) for m in client.get_metric_history(resumed.info.run_id, key)]
        want = [(m.step, m.value) for m in client.get_metric_history(uninterrupted.info.run_id, key)]
        assert got == want, key


def test_a_diverging_job_fails_alone_and_the_sweep_says_so(cli, tmp_path, runs_in):
    result = cli("-m", "act=relu", "optimizer.lr=0.01,1e30", "optimizer.momentum=0", "optimizer.nesterov=false",
                 "epochs=2", *SMALL)
    assert result.code == 1
    assert "multirun summary" in result.out and "1 diverged, 1 finished" in result.out
    client, runs = children(runs_in, tmp_path)
    by_lr = {r.data.params["optimizer.lr"]: r for r in runs}
    assert by_lr["0.01"].info.status == "FINISHED"
    bad = by_lr["1e+30"]
    assert bad.info.status == "FAILED" and bad.data.tags["outcome"] == "diverged"
    assert bad.data.tags["failure_reason"] == "training loss became nan at step 5 (epoch 1)"  # log_every=5
    parent = client.get_run(bad.data.tags["mlflow.parentRunId"])
    assert parent.info.status == "FAILED" and parent.data.tags["jobs_diverged"] == "1"


def test_a_crashing_job_leaves_its_traceback_and_the_others_run(cli, tmp_path, monkeypatch, runs_in):
    import bn_study.training as trainer

    original = trainer.JobTraining.run

    def crash_for_bn(self):
        if self.cfg.norm.kind == "batch":
            raise RuntimeError("simulated crash inside the training loop")
        return original(self)

    monkeypatch.setattr(trainer.JobTraining, "run", crash_for_bn)
    result = cli("-m", "norm=none,bn1", "act=sigmoid,relu", "epochs=1", *SMALL)
    assert result.code == 1
    assert "2 crashed, 2 finished" in result.out
    client, runs = children(runs_in, tmp_path)
    crashed = [r for r in runs if r.info.status == "FAILED"]
    assert len(crashed) == 2 and len(runs) == 4
    for r in crashed:
        assert r.data.tags["outcome"] == "crashed"
        assert "simulated crash" in r.data.tags["failure_reason"]
        trace = Path(client.download_artifacts(r.info.run_id, "traceback.txt", str(tmp_path / r.info.run_id)))
        assert "Traceback" in trace.read_text() and "crash_for_bn" in trace.read_text()


@pytest.mark.parametrize("attempt", [1, 2, 3])
def test_parallel_joblib_workers_share_one_fresh_sqlite_store(tmp_path, attempt, runs_in):
    result = bn_study(tmp_path, "-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=4",
                      "act=sigmoid,relu", "norm=none,bn1", "optimizer=sgd,adam", "epochs=2", *SMALL, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "locked" not in result.stdout + result.stderr
    client, runs = children(runs_in, tmp_path)
    assert len(runs) == 8 and all(r.info.status == "FINISHED" for r in runs)
    assert len({r.data.tags["condition"] for r in runs}) == 8
    for r in runs:
        for key in ("train_loss", "train_acc", "val_loss", "val_acc", "epoch_seconds"):
            assert [m.step for m in client.get_metric_history(r.info.run_id, key)] == [1, 2], key
        assert len(client.get_metric_history(r.info.run_id, "step_loss")) == 2 * 8 // 5  # 8 steps/epoch, every 5th
