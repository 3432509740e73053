"""Ctrl-C (a real SIGINT to a real process): one line saying where it stopped and how to continue, exit
130, no traceback; the runs and the multirun's parent KILLED with the reason; the rerun it names continues
the interrupted run to FINISHED."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import re
import time
from pathlib import Path

import torch

from mlflow import MlflowClient

from bn_study.tracking.claims import LEDGER_EXPERIMENT

REPO = Path(__file__).resolve().parent.parent
LINE = "interrupted (Ctrl-C): stopped with {done} of 40 epochs saved, run {ids} KILLED; {again} continues after epoch {done}"


def start(tmp_path: Path, *args: str) -> tuple[subprocess.Popen, Path, Path]:
    out, err = tmp_path / "out.txt", tmp_path / "err.txt"
    env = {**os.environ, "COLUMNS": "200", "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-m", "bn_study", *args, "epochs=40", "data.limit_train=2000", "progress=false",
           f"checkpoint_dir={tmp_path / 'checkpoints'}"]
    with open(out, "w") as o, open(err, "w") as e:
        # as from a terminal: a pytest started in the background (`cmd &`) hands its children SIGINT ignored
        proc = subprocess.Popen(cmd, cwd=tmp_path, stdout=o, stderr=e, env=env,
                                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    return proc, out, err


def interrupt_after_first_epoch(proc: subprocess.Popen, *logs: Path) -> None:
    deadline = time.monotonic() + 300
    while not any("epoch 1/40" in p.read_text() for p in logs):
        assert proc.poll() is None, "the job ended before its first epoch"
        assert time.monotonic() < deadline, "no epoch line within 300 s"
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=120)


def test_ctrl_c_in_a_single_run_is_one_line_exit_130_and_the_rerun_continues(tmp_path: Path, runs_in) -> None:
    proc, out, err = start(tmp_path)
    interrupt_after_first_epoch(proc, out, err)
    text = out.read_text() + err.read_text()
    assert proc.returncode == 130, text[-3000:]
    assert "Traceback" not in text and "KeyboardInterrupt" not in text
    client, (run,) = runs_in(tmp_path)
    assert run.info.status == "KILLED" and run.data.tags["failure_reason"] == "interrupted (Ctrl-C)"
    last = err.read_text().strip().splitlines()[-1]
    kept = int(re.search(r"stopped with (\d+) of 40 epochs saved", last).group(1))
    assert last == LINE.format(done=kept, ids=run.info.run_id, again="the same command with resume=true")
    (saved,) = (tmp_path / "checkpoints").glob("*.pt")
    assert kept >= 1 and torch.load(saved, weights_only=True)["epoch"] == kept
    assert max(int(m.step) for m in client.get_metric_history(run.info.run_id, "val_acc")) in (kept, kept + 1)
    # what the line says: a single run continues when asked to, into the same run, to the end
    proc, out, err = start(tmp_path, "resume=true")
    assert proc.wait(timeout=600) == 0, (out.read_text() + err.read_text())[-3000:]
    _, (again,) = runs_in(tmp_path)
    assert again.info.run_id == run.info.run_id and again.info.status == "FINISHED"
    steps = [int(m.step) for m in client.get_metric_history(run.info.run_id, "val_acc")]
    assert sorted(steps) == list(range(1, 41))  # every epoch once: none lost, none logged twice


def test_ctrl_c_in_a_multirun_kills_its_parent_with_the_reason(tmp_path: Path, runs_in) -> None:
    proc, out, err = start(tmp_path, "-m", "seed=0,1")
    interrupt_after_first_epoch(proc, out, err)
    text = out.read_text() + err.read_text()
    assert proc.returncode == 130, text[-3000:]
    assert "Traceback" not in text
    _, found = runs_in(tmp_path)
    parent = next(r for r in found if r.data.tags.get("role") == "multirun parent")
    assert parent.info.status == "KILLED" and parent.data.tags["failure_reason"] == "interrupted (Ctrl-C)"
    children = [r for r in found if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert [c.info.status for c in children] == ["KILLED"]  # the second job never started
    assert not [r for r in found if r.info.status == "RUNNING"]
    last = err.read_text().strip().splitlines()[-1]
    assert last.startswith("interrupted (Ctrl-C): stopped with ") and "; the same command continues after" in last
    # the same command: the interrupted member continues in its run, the other one trains; both FINISHED
    proc, out, err = start(tmp_path, "-m", "seed=0,1")
    assert proc.wait(timeout=600) == 0, (out.read_text() + err.read_text())[-3000:]
    members = [r for r in runs_in(tmp_path)[1] if r.data.tags.get("role") != "multirun parent"]
    assert sorted(r.info.status for r in members) == ["FINISHED", "FINISHED"]
    assert children[0].info.run_id in {r.info.run_id for r in members}


def test_ctrl_c_in_an_optuna_search_kills_its_parent_and_leaves_no_trial_running(tmp_path: Path) -> None:
    import optuna

    proc, out, err = start(tmp_path, "-m", "hparams_search=optuna", "hydra.sweeper.n_trials=3", "seed=0")
    interrupt_after_first_epoch(proc, out, err)
    text = out.read_text() + err.read_text()
    assert proc.returncode == 130, text[-3000:]
    assert "Traceback" not in text
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    found = client.search_runs([e.experiment_id for e in client.search_experiments()
                                if e.name != LEDGER_EXPERIMENT])  # the claims ledger is bookkeeping, no sweep
    parents = [r for r in found if r.data.tags.get("role") != "trial" and "mlflow.parentRunId" not in r.data.tags]
    assert [p.info.status for p in parents] == ["KILLED"]
    assert parents[0].data.tags["failure_reason"] == "interrupted (Ctrl-C)"
    assert not [r for r in found if r.info.status == "RUNNING"]
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(tmp_path / "optuna.journal")))
    (summary,) = optuna.get_all_study_summaries(storage)
    trials = optuna.load_study(study_name=summary.study_name, storage=storage).trials
    assert trials and all(t.state != optuna.trial.TrialState.RUNNING for t in trials), [t.state for t in trials]
