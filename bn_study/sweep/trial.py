"""The job's side of an Optuna trial: report the per-epoch objective, stop when the pruner says so.

The project's Optuna sweeper (``hydra/sweeper=optuna``) asks the study for a trial and launches the
job with the trial's number in ``$BN_STUDY_OPTUNA_TRIAL`` and the study's id in its storage in
``$BN_STUDY_OPTUNA_STUDY_ID`` (one storage may hold several studies, one per arm of a fair comparison),
both through ``hydra.job.env_set``, so they never enter the task config or the run's name. The storage
and the pruner are the sweeper's own config, which every job reads from Hydra and resolves exactly as
the sweeper does, so a job reports to the same study from any process.

After the search the sweeper reruns each study's best params (the final stage): those jobs carry
``$BN_STUDY_OPTUNA_STAGE=final`` and the best trial's number; they report nothing, but their runs are
tagged with the study, the arm and the trial they repeat.
"""

from __future__ import annotations

import logging
import os

import optuna
from hydra.core.hydra_config import HydraConfig

TRIAL_ENV = "BN_STUDY_OPTUNA_TRIAL"  # the trial's number in its study
STUDY_ENV = "BN_STUDY_OPTUNA_STUDY_ID"  # the study's id in the storage
STAGE_ENV = "BN_STUDY_OPTUNA_STAGE"  # "tune" (default) or "final"

log = logging.getLogger(__name__)


class TrialReporter:
    """One trial as the job sees it: per-epoch reports, and the tags of its MLflow runs."""

    def __init__(self, trial: optuna.Trial | None, study_name: str, number: int, stage: str = "tune",
                 arm: str | None = None) -> None:
        self.trial = trial  # None in the final stage: nothing to report to
        self.study_name = study_name
        self.number = number
        self.stage = stage
        self.arm = arm

    def report(self, epoch: int, value: float) -> None:
        """Record the epoch's objective; raise ``optuna.TrialPruned`` when the pruner stops the trial."""
        if self.trial is None:
            return
        self.trial.report(value, epoch)
        if self.trial.should_prune():
            raise optuna.TrialPruned(f"pruned by the study's pruner after epoch {epoch} (objective {value:.6g})")

    def record_runs(self, run_ids: list[str]) -> None:
        """The trial's MLflow runs, as its user attribute ``mlflow_run_ids`` (optuna-dashboard shows it)."""
        if self.trial is not None:
            self.trial.set_user_attr("mlflow_run_ids", list(run_ids))

    def tags(self) -> dict[str, str]:
        trial_key = "optuna_trial" if self.stage == "tune" else "optuna_best_trial"
        tags = {"optuna_study": self.study_name, trial_key: str(self.number), "stage": self.stage}
        if self.arm:
            tags["arm"] = self.arm
        return tags


def current_reporter() -> TrialReporter | None:
    """The trial this job runs, or None outside an Optuna sweep."""
    number_text, study_text = os.environ.get(TRIAL_ENV), os.environ.get(STUDY_ENV)
    if number_text is None or study_text is None or not HydraConfig.initialized():
        return None
    from hydra.utils import instantiate

    from bn_study.sweep.storage import open_storage

    hc = HydraConfig.get()
    storage = open_storage(hc.sweeper.get("storage"), hc.runtime.cwd)
    if storage is None:  # an in-memory study lives in the sweeping process only
        log.warning("this job runs in another process than its in-memory Optuna study: it cannot report "
                    "its epochs (no pruning); set hydra.sweeper.storage to share the study")
        return None
    study_id, number = int(study_text), int(number_text)
    study_name = storage.get_study_name_from_id(study_id)
    pruner_cfg = hc.sweeper.get("pruner")
    pruner = instantiate(pruner_cfg) if pruner_cfg is not None else optuna.pruners.NopPruner()
    # the job never samples: a plain sampler keeps loading the study cheap
    study = optuna.load_study(study_name=study_name, storage=storage, pruner=pruner,
                              sampler=optuna.samplers.RandomSampler())
    stage = os.environ.get(STAGE_ENV, "tune")
    trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, number)
    trial = optuna.Trial(study, trial_id) if stage == "tune" else None
    return TrialReporter(trial, study_name, number, stage, study.user_attrs.get("arm"))
