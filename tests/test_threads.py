"""How many CPU threads a job's ops get (``threads``; docs/benchmarks.md has the measurements behind it)."""

from __future__ import annotations

import os
import time

import pytest
import torch

from bn_study.train.threads import set_threads


@pytest.fixture(autouse=True)
def restore_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)




def test_tiny_steps_run_on_one_thread():
    torch.set_num_threads(2)
    set_threads("auto", batch_size=1)
    assert torch.get_num_threads() == 1


def test_an_explicit_number_wins():
    set_threads(2, batch_size=1)
    assert torch.get_num_threads() == 2


def test_busy_cores_mean_one_thread(monkeypatch):
    monkeypatch.setattr("bn_study.train.threads.others_busy_cores", lambda: 64.0)
    torch.set_num_threads(2)
    set_threads("auto", batch_size=128)
    assert torch.get_num_threads() == 1


@pytest.mark.parametrize("busy, parallel, expected", [
    (2.9, 1, 5),  # cores other processes hold are left to them
    (0.0, 4, 2),  # parallel jobs share the cores
    (0.0, 1, 8),  # an idle machine: PyTorch's default
])
def test_free_cores_are_shared_out(monkeypatch, busy, parallel, expected):
    monkeypatch.setattr("bn_study.train.threads.default_threads", lambda: 8)
    monkeypatch.setattr("os.cpu_count", lambda: 8)
    monkeypatch.setattr("bn_study.train.threads.others_busy_cores", lambda: busy)
    set_threads("auto", batch_size=128, parallel_jobs=parallel)
    assert torch.get_num_threads() == expected


def test_each_job_decides_afresh(monkeypatch):
    """A job that ran on one thread (busy cores, tiny batch) does not leave the next one on one thread."""
    monkeypatch.setattr("bn_study.train.threads.default_threads", lambda: 2)
    monkeypatch.setattr("os.cpu_count", lambda: 2)
    busy = iter([2.0, 0.0])
    monkeypatch.setattr("bn_study.train.threads.others_busy_cores", lambda: next(busy))
    set_threads("auto", batch_size=128)
    assert torch.get_num_threads() == 1
    set_threads("auto", batch_size=4)
    assert torch.get_num_threads() == 1
    set_threads("auto", batch_size=128)  # the cores are free again
    assert torch.get_num_threads() == 2


def test_busy_cores_come_from_the_cpu_time_others_used(monkeypatch):
    from bn_study.train.threads import others_busy_cores

    samples = iter([(1000, 800), (1100, 850)])  # 100 ticks went by, 50 of them idle: half the CPU busy
    monkeypatch.setattr("bn_study.train.threads.cpu_times", lambda: next(samples))
    monkeypatch.setattr("os.cpu_count", lambda: 4)
    assert others_busy_cores(0.0) == pytest.approx(2.0)


def test_a_spinning_process_is_seen_on_the_real_machine():
    """Another process spinning on a core shows as at least most of a busy core (more if others run too)."""
    import subprocess
    import sys

    from bn_study.train.threads import others_busy_cores

    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.3)
        busy = others_busy_cores(0.5)
    finally:
        spinner.kill()
    assert 0.6 <= busy <= (os.cpu_count() or 1)
