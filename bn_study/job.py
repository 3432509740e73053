"""Where a job was launched from and what Hydra knows about it that the config does not say."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode


SMALL_BATCH = 16  # at or below this batch size a step's ops run on one thread (see set_threads)


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
        work per op to split anyway) and whenever the cores are already busy at the start (1-minute load
        average >= core count); parallel jobs split the cores between them.
        """
        import torch

        cores = os.cpu_count() or 1
        if setting != "auto":
            torch.set_num_threads(int(setting))  # type: ignore[call-overload]
        elif batch_size <= SMALL_BATCH or os.getloadavg()[0] >= cores:
            torch.set_num_threads(1)
        elif self.parallel_jobs > 1:
            torch.set_num_threads(max(1, cores // self.parallel_jobs))


def resolve_path(path: str | Path, launch_dir: Path) -> Path:
    """Relative paths in the config mean relative to where the user launched, not the job's output dir."""
    path = Path(os.path.expanduser(str(path)))
    return path if path.is_absolute() else launch_dir / path
