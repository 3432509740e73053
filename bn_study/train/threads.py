"""How many CPU threads a job's ops get (``threads`` in the config)."""

from __future__ import annotations

import functools
import os
import time

import torch

SMALL_BATCH = 16  # at or below this batch size a step's ops run on one thread (see set_threads)
BUSY_WINDOW_S = 0.25  # how long set_threads watches what other processes do with the cores


@functools.cache
def default_threads() -> int:
    """PyTorch's own thread count, read before the first job of this process changes it."""
    return torch.get_num_threads()


def cpu_times() -> tuple[int, int]:
    """All CPU time and idle CPU time (idle + iowait) since boot, in ticks, from /proc/stat."""
    with open("/proc/stat") as f:
        fields = [int(v) for v in f.readline().split()[1:]]
    return sum(fields[:8]), fields[3] + (fields[4] if len(fields) > 4 else 0)


def others_busy_cores(window: float = BUSY_WINDOW_S) -> float:
    """How many cores other processes keep busy right now, watched over ``window`` seconds of /proc/stat.

    Called between jobs, while this process itself is idle: unlike the load average, it does not count
    this process's own previous job, nor a burst that ended a minute ago. Without /proc: the load average.
    """
    try:
        total0, idle0 = cpu_times()
        time.sleep(window)
        total1, idle1 = cpu_times()
    except (OSError, ValueError, IndexError):
        return os.getloadavg()[0]
    elapsed = total1 - total0
    return 0.0 if elapsed <= 0 else (1 - (idle1 - idle0) / elapsed) * (os.cpu_count() or 1)


def set_threads(setting: object, batch_size: int, parallel_jobs: int = 1) -> int:
    """CPU threads for this job's ops (``threads`` in the config; auto decides here).

    PyTorch's threads wait for each other at the end of every op. When another process holds a core,
    that wait stretches to the scheduler's time slice, and a step slows down many times over
    (docs/benchmarks.md). So auto uses one thread for tiny steps (batch <= 16, too little work per op
    to split anyway); otherwise as many threads as there are cores other processes leave free at the
    start (watched for a quarter second), at most PyTorch's default, and parallel jobs split the cores
    between them. Every job decides afresh: a busy moment does not stick to the jobs after it in the
    same process. Returns the count chosen.
    """
    default = default_threads()
    cores = os.cpu_count() or 1
    if setting != "auto":
        threads = int(setting)  # type: ignore[call-overload]
    elif batch_size <= SMALL_BATCH:
        threads = 1
    else:
        free = cores - others_busy_cores()
        threads = max(1, min(default, cores // max(1, parallel_jobs), int(free + 0.5)))
    torch.set_num_threads(threads)
    return threads
