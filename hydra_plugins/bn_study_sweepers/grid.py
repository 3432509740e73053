"""Hydra's grid sweep, plus what this project needs around it.

Before anything is written, every job's config is composed and checked: one bad combination in a
grid (``norm=bn4`` with ``model=book``, say) stops the multirun with exit code 2 and one sentence,
before a sweep dir, a run or an MLflow record exists. The data the jobs need is fetched here, once.
Then the multirun's MLflow parent run is created (with the database and experiment), the jobs run as
its children, and the parent is closed.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig

from bn_study.parent_run import ParentRun, sweep_description
from bn_study.preflight import preflight

log = logging.getLogger(__name__)


def compose_jobs(sweeper: Any, batch: Sequence[Sequence[str]]) -> list[DictConfig]:
    """Each job's config, composed exactly as its launcher will compose it."""
    loader = sweeper.hydra_context.config_loader
    return [loader.load_sweep_config(master_config=sweeper.config, sweep_overrides=list(o)) for o in batch]


def job_labels(batch: Sequence[Sequence[str]]) -> list[str]:
    return [f"job #{i} ({' '.join(o)})" for i, o in enumerate(batch)]


class GridSweeper(BasicSweeper):
    def __init__(self, max_batch_size: int | None, params: dict[str, str] | None = None) -> None:
        super().__init__(max_batch_size=max_batch_size, params=params)
        self.parent: ParentRun | None = None

    def all_jobs(self, arguments: list[str]) -> list[list[str]]:
        """The grid's jobs, expanded as BasicSweeper.sweep expands them."""
        params_conf = self._parse_config()
        params_conf.extend(arguments)
        parser = OverridesParser.create(config_loader=self.hydra_context.config_loader)
        batches = self.split_arguments(parser.parse_overrides(params_conf), None)
        return [list(job) for batch in batches for job in batch]

    def validate_batch_is_legal(self, batch: Sequence[Sequence[str]]) -> None:
        pass  # sweep() composed and checked every job before the first batch

    def sweep(self, arguments: list[str]) -> Any:
        jobs = self.all_jobs(arguments)
        preflight(compose_jobs(self, jobs), self.config.hydra.runtime.cwd, job_labels(jobs))
        self.parent = ParentRun(self.config, sweep_description(list(self.config.hydra.overrides.task)))
        try:
            returns = super().sweep(arguments)
        except BaseException:
            self.parent.finish(failed=True)
            raise
        self.parent.finish(failed=False)
        return returns
