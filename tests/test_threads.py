"""How many CPU threads a job's ops get (see JobContext.set_threads for the measurements behind it)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import torch

from bn_study.job import JobContext


@pytest.fixture(autouse=True)
def restore_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def job(parallel: int = 1) -> JobContext:
    return JobContext((), Path.cwd(), "multirun/x" if parallel > 1 else None, None, parallel)


def test_tiny_steps_run_on_one_thread():
    torch.set_num_threads(2)
    job().set_threads("auto", batch_size=1)
    assert torch.get_num_threads() == 1


def test_an_explicit_number_wins():
    job().set_threads(2, batch_size=1)
    assert torch.get_num_threads() == 2


def test_busy_cores_mean_one_thread(monkeypatch):
    monkeypatch.setattr("bn_study.job.others_busy_cores", lambda: 64.0)
    torch.set_num_threads(2)
    job().set_threads("auto", batch_size=128)
    assert torch.get_num_threads() == 1


def test_a_core_taken_by_another_process_is_left_to_it(monkeypatch):
    monkeypatch.setattr("bn_study.job._default_threads", [8])
    monkeypatch.setattr("os.cpu_count", lambda: 8)
    monkeypatch.setattr("bn_study.job.others_busy_cores", lambda: 2.9)
    job().set_threads("auto", batch_size=128)
    assert torch.get_num_threads() == 5


def test_parallel_jobs_share_the_cores(monkeypatch):
    monkeypatch.setattr("bn_study.job._default_threads", [8])
    monkeypatch.setattr("bn_study.job.others_busy_cores", lambda: 0.0)
    monkeypatch.setattr("os.cpu_count", lambda: 8)
    job(parallel=4).set_threads("auto", batch_size=128)
    assert torch.get_num_threads() == 2


def test_each_job_decides_afresh(monkeypatch):
    """A job that ran on one thread (busy cores, tiny batch) does not leave the next one on one thread."""
    monkeypatch.setattr("bn_study.job._default_threads", [2])
    monkeypatch.setattr("os.cpu_count", lambda: 2)
    busy = iter([2.0, 0.0])
    monkeypatch.setattr("bn_study.job.others_busy_cores", lambda: next(busy))
    job().set_threads("auto", batch_size=128)
    assert torch.get_num_threads() == 1
    job().set_threads("auto", batch_size=4)
    assert torch.get_num_threads() == 1
    job().set_threads("auto", batch_size=128)  # the cores are free again
    assert torch.get_num_threads() == 2


def test_the_busy_cores_of_others_are_measured_not_guessed():
    """A process spinning on one core shows as about one busy core (this process sleeps meanwhile)."""
    import subprocess
    import sys

    from bn_study.job import others_busy_cores

    idle = others_busy_cores(0.5)
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.3)
        busy = others_busy_cores(0.5)
    finally:
        spinner.kill()
    assert 0.6 <= busy - idle <= 1.4
