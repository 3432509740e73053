"""The job's side of an Optuna trial: report the per-epoch objective, stop when the pruner says so.

The project's Optuna sweeper asks the study for a trial and launches the job with the trial's number
in ``$BN_STUDY_OPTUNA_TRIAL`` (through ``hydra.job.env_set``, so it never enters the task config);
the storage URL and study name are the sweeper's own config, which every job can read from Hydra.
The job reports to the same storage the sweeper uses, so pruning works across processes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import optuna
from hydra.core.hydra_config import HydraConfig

TRIAL_ENV = "BN_STUDY_OPTUNA_TRIAL"


@dataclass
class TrialReporter:
    trial: optuna.Trial
    study_name: str

    def report(self, epoch: int, value: float) -> None:
        """Record the epoch's objective; raise ``optuna.TrialPruned`` when the pruner stops the trial."""
        self.trial.report(value, epoch)
        if self.trial.should_prune():
            raise optuna.TrialPruned(f"pruned by the study's pruner after epoch {epoch} (objective {value:.6g})")

    def tags(self) -> dict[str, str]:
        return {"optuna_study": self.study_name, "optuna_trial": str(self.trial.number)}


def current_reporter() -> TrialReporter | None:
    """The trial this job runs, or None outside an Optuna sweep."""
    number = os.environ.get(TRIAL_ENV)
    if number is None or not HydraConfig.initialized():
        return None
    sweeper = HydraConfig.get().sweeper
    study = optuna.load_study(study_name=sweeper.study_name, storage=sweeper.storage)
    trial_id = next(t._trial_id for t in study.get_trials(deepcopy=False) if t.number == int(number))
    return TrialReporter(optuna.Trial(study, trial_id), sweeper.study_name)
