"""Where a job was launched from and what Hydra knows about it that the config does not say."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode


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

    def share_cores(self) -> None:
        """Parallel jobs split the cores between them instead of each starting one thread per core."""
        if self.parallel_jobs > 1:
            import torch

            torch.set_num_threads(max(1, (os.cpu_count() or 1) // self.parallel_jobs))


def resolve_path(path: str | Path, launch_dir: Path) -> Path:
    """Relative paths in the config mean relative to where the user launched, not the job's output dir."""
    path = Path(os.path.expanduser(str(path)))
    return path if path.is_absolute() else launch_dir / path
