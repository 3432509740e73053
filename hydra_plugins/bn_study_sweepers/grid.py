"""Hydra's grid sweep, plus what this project needs around it.

Before anything is written, every job's config is composed and checked: one bad combination in a
grid (``norm=bn4`` with ``model=book``, say) stops the multirun with exit code 2 and one sentence,
before a sweep dir, a run or an MLflow record exists. The data the jobs need is fetched here, once.
Then the multirun's MLflow parent run is created (with the database and experiment), the jobs run as
its children — all of them, whatever fails — and a summary table closes the sweep, which exits 1 if a
job diverged or crashed. A job whose members another live launch of the same grid trains (two identical
commands, N machines against one server) is deferred; once every other job ran, the sweep comes back to
those and waits for their results, so each member is trained once and every launch's summary is whole.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from pathlib import Path

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.utils import JobReturn
from omegaconf import DictConfig

log = logging.getLogger(__name__)


class GridSweeper(BasicSweeper):
    def __init__(self, max_batch_size: int | None, params: dict[str, str] | None = None) -> None:
        super().__init__(max_batch_size=max_batch_size, params=params)
        self.parent: Any = None  # the multirun's ParentRun, once the jobs passed preflight
        self.sequential: Any = None  # the report section, when it adds seeds look by look (report.sequential)

    def all_jobs(self, arguments: list[str]) -> list[list[str]]:
        """The grid's jobs, expanded as BasicSweeper.sweep expands them."""
        from bn_study.errors import UserError

        params_conf = self._parse_config()
        params_conf.extend(arguments)
        parser = OverridesParser.create(config_loader=self.hydra_context.config_loader)
        overrides = parser.parse_overrides(params_conf)
        for override in overrides:
            if override.is_interval_sweep():  # BasicSweeper would raise a HydraException mid-sweep
                raise UserError(f"{override.input_line} is not allowed in a grid: an interval is a range for a "
                                "search to sample; give the grid a list (a,b,c), choice(…) or range(…), or search "
                                "it with hparams_search=optuna.")
        batches = self.split_arguments(overrides, None)
        return [list(job) for batch in batches for job in batch]

    def compose_all(self, jobs: list[list[str]], labels: list[str]) -> list[DictConfig]:
        """Every job's config, composed as its launcher will compose it; a job that does not compose (a wrong
        type in a grid, ``epochs=1,abc``) is named."""
        from hydra.errors import CompactHydraException

        from bn_study.errors import UserError, describe_config_error
        from bn_study.sweep.compose import compose_jobs

        configs = []
        for job, label in zip(jobs, labels):
            try:
                configs.extend(compose_jobs(self, [job]))
            except CompactHydraException as err:
                raise UserError(f"{label}: {describe_config_error(err)}") from None
        return configs

    def _launch(self, jobs: list[list[str]], first_index: int) -> list[JobReturn]:
        """Every job, in batches of ``max_batch_size``; Hydra numbers their dirs from ``first_index``."""
        results: list[JobReturn] = []
        for batch in self.split_overrides_to_chunks(jobs, self.max_batch_size):
            results.extend(self.launcher.launch(batch, initial_job_idx=first_index + len(results)))
        return results

    def _sequential_looks(self, jobs: list[list[str]], first_index: int) -> list[JobReturn]:
        """``report.sequential``: after the planned jobs, more seeds for undecided claims, look by look."""
        from bn_study.sweep.sequential import more_seeds

        spec = self.sequential
        results: list[JobReturn] = []
        if spec is None:
            return results
        experiment = self.parent.client.get_experiment(self.parent.experiment_id).name
        before: list[list[str]] = []
        while extra := more_seeds(spec, self.parent.client, experiment, self.parent.run_id, jobs, self.conditions):
            if extra == before:  # the last look's jobs left no runs (they crashed first): asking again won't help
                log.error("sequential seeds: the jobs of the last look logged no runs; no further looks")
                break
            results += self._launch(extra, first_index=first_index + len(results))
            before = extra
        return results

    def _publish_summary(self, linked: int, jobs: int) -> None:
        """The result per condition on the parent run: its description, a table artifact, metrics."""
        from bn_study.sweep import parent_summary as summary
        from bn_study.tracking.condition import defaults_of_jobs

        metric, direction = str(self.config.objective.metric), str(self.config.objective.direction)
        results = summary.condition_results(self.parent.result_runs(), metric, self.conditions)
        note = summary.description(results, metric, direction, self.parent.name,
                                   defaults_of_jobs(self.config, [r.condition for r in results]))
        links = self.parent.links_note(linked, jobs)
        self.parent.log_summary(note + (f"\n\n{links}" if links else ""), summary.table(results, metric),
                                summary.metrics(results, metric), summary.SUMMARY_ARTIFACT)

    def validate_batch_is_legal(self, batch: Sequence[Sequence[str]]) -> None:
        pass  # sweep() composed and checked every job before the first batch

    def sweep(self, arguments: list[str]) -> Any:
        # Imported here, not at module level: Hydra's plugin scan imports this module on every start,
        # and torch + MLflow would add seconds to commands that never sweep.
        from bn_study.errors import StoreError, UserError
        from bn_study.tracking.parent import ParentRun, sweep_description
        from bn_study.preflight import preflight
        from bn_study.sweep.compose import job_labels
        from bn_study.sweep.summary import any_failed, counts, job_row, print_summary
        from bn_study.tracking.condition import condition_of_job
        from bn_study.util.redact import save_masked

        if self.max_batch_size is not None and (not isinstance(self.max_batch_size, int) or self.max_batch_size < 1):
            raise UserError(f"hydra.sweeper.max_batch_size={self.max_batch_size!r} is not allowed; it must be a "
                            "whole number >= 1, or null (all jobs in one batch).")
        # every check before anything exists: the launcher's settings, the study's report section (its
        # sequential looks run inside this sweep), then every job of the grid
        from bn_study.sweep.sequential import sequential_spec

        self.sequential = sequential_spec(self.config)
        jobs = self.all_jobs(arguments)
        labels = job_labels(jobs)
        configs = self.compose_all(jobs, labels)
        preflight(configs, self.config.hydra.runtime.cwd, labels, launcher=self.config.hydra.launcher)
        self.conditions = [condition_of_job(c, c) for c in configs]
        sweep_dir = Path(self.config.hydra.sweep.dir)
        sweep_dir.mkdir(parents=True, exist_ok=True)
        save_masked(self.config, sweep_dir / "multirun.yaml")
        self.parent = ParentRun(self.config, sweep_description(list(self.config.hydra.overrides.task)))
        try:
            # Unlike BasicSweeper, a failed job does not stop the sweep: every job runs, then the summary.
            self.parent.on_held("defer")
            results = self._launch(jobs, first_index=0)
            held = [i for i, r in enumerate(results) if getattr(r._return_value, "status", None) == "held"]
            if held:
                log.info("%d job%s trained by another launch of this grid: waiting for %s", len(held),
                         "s" if len(held) > 1 else "", "them" if len(held) > 1 else "it")
                self.parent.on_held("wait")
                for i, r in zip(held, self._launch([jobs[i] for i in held], first_index=len(results))):
                    results[i] = r
            results += self._sequential_looks(jobs, len(results))
        except KeyboardInterrupt:
            self.parent.interrupted()
            raise
        except BaseException:
            try:
                self.parent.finish(failed=True)
            except StoreError as err:  # a full disk: what stopped the sweep is the line to show, this one follows
                log.error("%s", err)
            raise
        rows = [job_row(i, r) for i, r in enumerate(results)]
        print_summary(rows)
        failed = any_failed(rows)
        self.parent.set_tags({f"jobs_{status}": n for status, n in counts(rows).items()})
        self._publish_summary(sum(r.status in ("skipped", "resumed") for r in rows), len(rows))
        self.parent.finish(failed=failed)
        if failed:
            log.error("%d of %d jobs failed; see the summary above and their MLflow runs",
                      sum(r.status in ("diverged", "crashed") for r in rows), len(rows))
            raise SystemExit(1)
        return [results]
