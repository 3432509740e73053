"""The Hydra task, one line per stage: config → tracking → data → model → loop → outcome.

Everything heavy (torch, MLflow, the data) is imported inside ``run``: Hydra imports this module on
every start, and ``--cfg job`` or a wrong override must not wait for libraries it never uses.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import hydra
from omegaconf import DictConfig

from bn_study.config.sources import conf_dir
from bn_study.errors import UserError, exit_for_user
from bn_study.util.disk import as_store_error

if TYPE_CHECKING:
    from bn_study.sweep.outcome import JobOutcome

log = logging.getLogger("bn_study")


def run(cfg: DictConfig) -> JobOutcome:
    from bn_study.data import load_splits
    from bn_study.job import JobPlan
    from bn_study.sweep.trial import current_reporter
    from bn_study.tracking.members import MemberTracking
    from bn_study.train.engines import build_engine
    from bn_study.train.loop import new_state
    from bn_study.train.members import Members
    from bn_study.train.model import seeded_models
    from bn_study.training import JobTraining

    plan = JobPlan.from_config(cfg)  # config: checked; the members (seeds), their hashes, the device, threads
    # tracking: the store; members already done, or trained by another live launch of the same grid
    with MemberTracking.open(plan, current_reporter()) as tracking:
        if not tracking.todo or tracking.held_by:
            return tracking.outcome_of_done()
        data = cfg.data
        splits = load_splits(data.name, plan.context.path(data.root), val=data.val, limit_train=data.limit_train,
                             device=plan.device, sources=list(data.sources), verify=data.verify)  # data, on the device
        # model: one per seed, initialised exactly as its own run would be, trained together
        members = Members(seeded_models(tracking.todo, cfg.model, cfg.act, cfg.norm,
                                        num_features=splits.num_features, num_classes=splits.num_classes))
        optimizer, step = build_engine(cfg.engine, members, cfg.loss.name, cfg.optimizer, plan.device)
        state = new_state(members, optimizer, tracking.todo)
        resumed = tracking.resume_into(state)  # a checkpoint of this very job: continue after its last epoch
        with tracking.member_runs(state) as runs:  # every run ends FINISHED, FAILED or KILLED, never RUNNING
            history = JobTraining(plan, tracking, splits, state, step, runs, resumed).run()  # the loop
        log.info("%s", tracking.closing_line(runs, history, state.failures))
        return tracking.outcome(history, state.failures, resumed)  # the objective, back to the sweeper


@hydra.main(version_base="1.3", config_path=str(conf_dir()), config_name="config")
def main(cfg: DictConfig) -> float:
    _mask_hydra_record()
    try:
        outcome = run(cfg)
    except UserError as err:
        exit_for_user(err)
        raise  # unreachable: exit_for_user raises SystemExit
    except Exception as err:
        store = as_store_error(err, cfg.tracking.uri or "mlflow.db in the launch dir")
        if store is None:
            raise
        if _in_multirun():  # the job's one line; the sweep goes on and counts it in its summary
            log.error("%s", store)
        raise store from None  # a single run: the entry point prints it as its one line
    if outcome.status == "diverged" and not _in_multirun():
        raise SystemExit(1)  # a single run that diverged: its run is FAILED in MLflow, say so to the shell
    return outcome


def _in_multirun() -> bool:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def _mask_hydra_record() -> None:
    """Hydra has just written the job's config, overrides and its own settings under ``.hydra/``, a password
    in tracking.uri or hydra.sweeper.storage included; nothing reads them back, so they keep it masked."""
    from pathlib import Path

    from hydra.core.hydra_config import HydraConfig

    from bn_study.util.redact import mask_file

    if not HydraConfig.initialized() or not HydraConfig.get().output_subdir:
        return
    hydra_cfg = HydraConfig.get()
    for path in (Path(hydra_cfg.runtime.output_dir) / hydra_cfg.output_subdir).glob("*.yaml"):
        mask_file(path)
