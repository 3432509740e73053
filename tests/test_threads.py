"""How many CPU threads a job's ops get (see JobContext.set_threads for the measurements behind it)."""

from __future__ import annotations

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
    monkeypatch.setattr("os.getloadavg", lambda: (64.0, 64.0, 64.0))
    torch.set_num_threads(2)
    job().set_threads("auto", batch_size=128)
    assert torch.get_num_threads() == 1


def test_parallel_jobs_share_the_cores(monkeypatch):
    monkeypatch.setattr("os.getloadavg", lambda: (0.0, 0.0, 0.0))
    monkeypatch.setattr("os.cpu_count", lambda: 8)
    job(parallel=4).set_threads("auto", batch_size=128)
    assert torch.get_num_threads() == 2
