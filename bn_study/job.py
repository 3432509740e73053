"""Where a job was launched from and what Hydra knows about it that the config does not say."""

from __future__ import annotations

import functools
import os
import time
from dataclasses import dataclass
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode


SMALL_BATCH = 16  # at or below this batch size a step's ops run on one thread (see set_threads)
BUSY_WINDOW_S = 0.25  # how long set_threads watches what other processes do with the cores


@functools.cache
def default_threads() -> int:
    """PyTorch's own thread count, read before the first job of this process changes it."""
    import torch

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


@dataclass(frozen=True)
class JobContext:
    """What Hydra knows about this job that the config itself does not say."""

    overrides: tuple[str, ...]
    launch_dir: Path
    sweep_dir: str | None  # set in a multirun
    launcher: str | None
    parallel_jobs: int = 1  # jobs running at once on this machine (joblib's n_jobs)

    @classmethod
    def current(cls) -> JobContext:
        if not HydraConfig.initialized():
            return cls((), Path.cwd(), None, None)
        hc = HydraConfig.get()
        multirun = hc.mode == RunMode.MULTIRUN
        launcher = hc.launcher.get("_target_") if multirun else None
        parallel = 1
        if launcher and "joblib" in launcher:
            n_jobs = int(hc.launcher.get("n_jobs") or -1)
            parallel = (os.cpu_count() or 1) if n_jobs < 1 else n_jobs
        return cls(tuple(hc.overrides.task), Path(hc.runtime.cwd), str(hc.sweep.dir) if multirun else None,
                   launcher, parallel)

    def set_threads(self, setting: object, batch_size: int) -> None:
        """CPU threads for this job's ops (``threads`` in the config; auto decides here).

        PyTorch's threads wait for each other at the end of every op. When another process holds a core,
        that wait stretches to the scheduler's time slice: measured on this project's 2-core machine
        under load, a book step went from 1 ms (1 thread) to 37 ms (2 threads), an article step at
        batch 128 from 8 ms to 280 ms. So auto uses one thread for tiny steps (batch <= 16, too little
        work per op to split anyway); otherwise as many threads as there are cores other processes leave
        free at the start (watched for a quarter second), at most PyTorch's default, and parallel jobs
        split the cores between them. Every job decides afresh: a busy moment does not stick to the
        jobs after it in the same process.
        """
        import torch

        default = default_threads()
        cores = os.cpu_count() or 1
        if setting != "auto":
            threads = int(setting)  # type: ignore[call-overload]
        elif batch_size <= SMALL_BATCH:
            threads = 1
        else:
            free = cores - others_busy_cores()
            threads = max(1, min(default, cores // max(1, self.parallel_jobs), int(free + 0.5)))
        torch.set_num_threads(threads)

def resolve_path(path: str | Path, launch_dir: Path) -> Path:
    """Relative paths in the config mean relative to where the user launched, not the job's output dir."""
    path = Path(os.path.expanduser(str(path)))
    return path if path.is_absolute() else launch_dir / path
