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


def test_the_default_is_pytorchs_own_count_even_after_a_job_changed_it():
    """A job on one thread must not become "PyTorch's default" for the jobs after it in the process (a fresh
    process, so that the default is read where a real one reads it: at its first job)."""
    import subprocess
    import sys

    code = """if True:
        from unittest import mock
        import torch
        from bn_study.train import threads
        torch.set_num_threads(3)  # what PyTorch starts with in this pretend process
        with mock.patch("os.cpu_count", lambda: 8), mock.patch.object(threads, "others_busy_cores", lambda: 0.0):
            threads.set_threads(1, batch_size=128)  # the first job asks for one thread
            threads.set_threads("auto", batch_size=128)  # the next, on an idle 8-core machine: the default
        print(torch.get_num_threads())
    """
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["3"]


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="threads=2 needs a machine with at least 2 CPU cores")
@pytest.mark.parametrize("busy, setting", [(0.0, 1), (64.0, 2)])  # auto would choose 2 and 1 here
def test_a_job_runs_on_the_threads_its_config_names(cli, tmp_path, runs_in, monkeypatch, busy, setting):
    monkeypatch.setattr("bn_study.train.threads.others_busy_cores", lambda: busy)
    result = cli(f"threads={setting}", "epochs=1", "data.limit_train=200", "probe.enabled=false",
                 "tracking.figures=false")
    assert result.code == 0, result.err
    [run] = runs_in(tmp_path)[1]
    assert run.data.tags["device"].endswith(f"({setting} threads)")
