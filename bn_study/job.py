"""What one job is: what Hydra knows about it that the config does not say, and what the config decides
before anything is built — the members (seeds) it trains, their configs and content hashes, the device."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from bn_study.config.rules import member_seeds, validate_config
from bn_study.train.device import resolve_device
from bn_study.tracking.condition import DEFAULTS, condition_of_job
from bn_study.tracking.resume import config_hash
from bn_study.train.threads import set_threads
from bn_study.util.paths import resolve_path


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

    def path(self, configured: str | Path) -> Path:
        """A configured path: relative means relative to where the user launched, not the job's output dir."""
        return resolve_path(configured, self.launch_dir)


def member_config(cfg: DictConfig, seed: int) -> DictConfig:
    """The config a separately launched run of this member would have had."""
    one = OmegaConf.masked_copy(cfg, [k for k in cfg.keys() if k != "hydra"])
    one = OmegaConf.create(OmegaConf.to_container(one, resolve=True))
    one.seed, one.seeds = int(seed), None
    return one


@dataclass(frozen=True)
class JobPlan:
    """The job decided from its config, before data, model or MLflow are touched."""

    cfg: DictConfig
    context: JobContext
    device: torch.device
    seeds: tuple[int, ...]
    configs: dict[int, DictConfig]  # per seed: the config of a separate run of that member
    hashes: dict[int, str]  # per seed: that config's content hash (how reruns recognise a member)
    condition: str = DEFAULTS  # the settings that differ from the defaults (bn_study.tracking.condition)

    @classmethod
    def from_config(cls, cfg: DictConfig) -> JobPlan:
        # The launching process checked every job already; a job launched by a foreign sweeper was not.
        context = JobContext.current()
        validate_config(cfg, launch_dir=context.launch_dir)
        set_threads(cfg.threads, cfg.batch_size, context.parallel_jobs)
        seeds = member_seeds(cfg)
        configs = {seed: member_config(cfg, seed) for seed in seeds}
        condition = condition_of_job(cfg, HydraConfig.get()) if HydraConfig.initialized() else DEFAULTS
        return cls(cfg, context, resolve_device(cfg.device), seeds, configs,
                   {seed: config_hash(one) for seed, one in configs.items()}, condition)
