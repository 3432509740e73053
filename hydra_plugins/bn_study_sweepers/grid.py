"""Hydra's grid sweep, plus what this project needs around it.

Before anything is written, every job's config is composed and checked: one bad combination in a
grid (``norm=bn4`` with ``model=book``, say) stops the multirun with exit code 2 and one sentence,
before a sweep dir, a run or an MLflow record exists. The data the jobs need is fetched here, once.
Then the multirun's MLflow parent run is created (with the database and experiment), the jobs run as
its children — all of them, whatever fails — and a summary table closes the sweep, which exits 1 if a
job diverged or crashed.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from pathlib import Path

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.utils import JobReturn
from omegaconf import DictConfig, OmegaConf

log = logging.getLogger(__name__)


class GridSweeper(BasicSweeper):
    def __init__(self, max_batch_size: int | None, params: dict[str, str] | None = None) -> None:
        super().__init__(max_batch_size=max_batch_size, params=params)
        self.parent: Any = None  # the multirun's ParentRun, once the jobs passed preflight

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
        # Imported here, not at module level: Hydra's plugin scan imports this module on every start,
        # and torch + MLflow would add seconds to commands that never sweep.
        from bn_study.tracking.parent import ParentRun, sweep_description
        from bn_study.preflight import preflight
        from bn_study.sweep.compose import compose_jobs, job_labels
        from bn_study.sweep.summary import any_failed, counts, job_row, print_summary

        jobs = self.all_jobs(arguments)
        preflight(compose_jobs(self, jobs), self.config.hydra.runtime.cwd, job_labels(jobs))
        sweep_dir = Path(self.config.hydra.sweep.dir)
        sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(self.config, sweep_dir / "multirun.yaml")
        self.parent = ParentRun(self.config, sweep_description(list(self.config.hydra.overrides.task)))
        results: list[JobReturn] = []
        try:
            # Unlike BasicSweeper, a failed job does not stop the sweep: every job runs, then the summary.
            for batch in self.split_overrides_to_chunks(jobs, self.max_batch_size):
                results.extend(self.launcher.launch(batch, initial_job_idx=len(results)))
        except BaseException:
            self.parent.finish(failed=True)
            raise
        shared = list(self.config.hydra.overrides.task)
        rows = [job_row(i, r, shared) for i, r in enumerate(results)]
        print_summary(rows)
        failed = any_failed(rows)
        self.parent.set_tags({f"jobs_{status}": n for status, n in counts(rows).items()})
        self.parent.finish(failed=failed)
        if failed:
            log.error("%d of %d jobs failed; see the summary above and their MLflow runs",
                      sum(r.status in ("diverged", "crashed") for r in rows), len(rows))
            raise SystemExit(1)
        return [results]
