"""The launcher settings of a multirun (``hydra.launcher``) that would fail only once the jobs are launched:
checked with the config, before anything is written (bn_study/preflight.py)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bn_study.config.rules import _is_whole, _number, _one_of, _whole
from bn_study.errors import UserError

JOBLIB_BACKENDS = (None, "loky", "multiprocessing", "threading")


def validate_launcher(launcher: Mapping[str, Any] | None) -> None:
    """Raise ``UserError`` for a launcher setting that would fail only once the jobs are launched."""
    if not launcher:
        return
    target = str(launcher.get("_target_", ""))
    key = "hydra.launcher"
    if "joblib" in target.lower():
        n_jobs = launcher.get("n_jobs")
        if n_jobs is not None and (not _is_whole(n_jobs) or n_jobs == 0):
            raise UserError(f"{key}.n_jobs={n_jobs!r} is not allowed; it must be a whole number of parallel jobs >= 1, "
                            "or negative to count back from the CPU count (-1 = all cores).")
        _one_of(f"{key}.backend", launcher.get("backend"), JOBLIB_BACKENDS)
        _one_of(f"{key}.prefer", launcher.get("prefer", "processes"), ("processes", "threads"))
        _one_of(f"{key}.require", launcher.get("require"), (None, "sharedmem"))
        if launcher.get("timeout") is not None:
            _number(f"{key}.timeout", launcher.get("timeout"), low=0, low_open=True, what=" seconds, or null")
    if "submitit" in target.lower():
        for name in ("timeout_min", "nodes", "tasks_per_node"):
            if name in launcher:
                _whole(f"{key}.{name}", launcher.get(name), 1)
        for name, low in (("cpus_per_task", 1), ("gpus_per_node", 0), ("mem_gb", 1)):
            if launcher.get(name) is not None:
                _whole(f"{key}.{name}", launcher.get(name), low, what=", or null")
        if "array_parallelism" in launcher:
            _whole(f"{key}.array_parallelism", launcher.get("array_parallelism"), 1)
