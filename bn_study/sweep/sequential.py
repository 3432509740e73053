"""``report.sequential`` at sweep time: after the planned jobs, the grid sweeper asks the store which claims
are still undecided (``bn_study.report.sequential.next_look``, the rule the report applies) and launches
the same jobs again with the next seeds, for exactly the conditions those claims read."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from mlflow import MlflowClient
from omegaconf import DictConfig

from bn_study.report.collect import collect, group
from bn_study.report.load import spec_from_config
from bn_study.report.sequential import next_look
from bn_study.report.spec import ReportSpec
from bn_study.util.overrides import override_key

log = logging.getLogger(__name__)


def sequential_spec(config: DictConfig) -> ReportSpec | None:
    spec = spec_from_config(config)
    return spec if spec is not None and spec.sequential is not None else None


def more_seeds(spec: ReportSpec, client: MlflowClient, experiment: str, parent_run_id: str,
               jobs: Sequence[Sequence[str]], conditions_of_jobs: Sequence[str]) -> list[list[str]]:
    """The next look's jobs: each planned job (with its condition) whose condition needs seeds, with
    ``seeds=[…]`` set to the seeds it lacks; [] when every claim is decided or at the cap."""
    conditions = group(collect(client, experiment, parent_run_id), spec)
    grow, seeds = next_look(spec, conditions)
    by_key = {c.key: c for c in grow}
    out, added = [], set()
    for job, condition in zip(jobs, conditions_of_jobs):
        cond = by_key.get(condition)
        if cond is None:
            continue
        have = {r.seed for r in cond.runs}
        missing = [s for s in seeds if s not in have]
        if missing:
            added.update(missing)
            kept = [o for o in job if override_key(o) not in ("seed", "seeds")]
            out.append([*kept, f"seeds=[{','.join(str(s) for s in missing)}]"])
    if out:
        log.info("sequential seeds: %d job%s of undecided claims get seeds %s", len(out),
                 "s" if len(out) != 1 else "", ",".join(str(s) for s in sorted(added)))
    return out
