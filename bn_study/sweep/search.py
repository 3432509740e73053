"""One invocation of the Optuna sweeper: open (or resume) each arm's study, ask a batch of trials, launch
them, tell their outcomes, mirror them in MLflow; then rerun each study's best params (the final stage).
"""

import copy
import functools
import logging
from collections import Counter
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

import optuna
from optuna.trial import TrialState

from bn_study.errors import UserError
from bn_study.sweep import trial_log, trial_outcome as optuna_outcome, space as optuna_space, storage as optuna_storage
from bn_study.sweep.trial_outcome import TrialOutcome
from bn_study.sweep.plan import SearchPlan
from bn_study.sweep.results import best_trial, results_document
from bn_study.sweep.stale_trials import claim, retry_orphaned_trials
from bn_study.sweep.storage import check_direction
from bn_study.sweep.summary import JobRow, print_summary, trial_row
from bn_study.util.redact import mask_userinfo

if TYPE_CHECKING:  # MLflow is loaded only when a search tracks its runs
    from bn_study.sweep.mlflow_mirror import SweepTracking

log = logging.getLogger(__name__)


class SearchSettings(Protocol):
    """What a search needs of the Hydra sweeper that runs it (its settings, and how it launches jobs)."""

    sampler: Any
    pruner: Any
    directions: list[str]
    study_name: str | None
    n_trials: int
    n_jobs: int
    max_failure_rate: float
    failure_rate_over: str  # "batch" (Hydra's plugin) or "run"
    grid_includes_stop: bool
    # called as f(config, trial) after the space is sampled, to suggest more params (Hydra's plugin)
    custom_search_space: Callable[[Any, optuna.Trial], None] | None
    config: Any
    final_overrides: list[str] | None

    def launch(self, jobs: list[list[str]]) -> Sequence[Any]: ...

    def preflight(self, jobs: list[list[str]], labels: list[str]) -> None: ...


class SweepRun:
    """One invocation of the sweeper: its studies, the trials it adds, their outcomes."""

    def __init__(self, sweeper: SearchSettings, plan: SearchPlan, storage: Any, resolved: str | None,
                 tracking: "SweepTracking | None", project: bool) -> None:
        self.sweeper = sweeper
        self.project = project
        self.plan = plan
        self.storage = storage
        self.where = optuna_storage.display(resolved)
        self.tracking = tracking
        self.studies: list[tuple[list[str], optuna.Study]] = []
        self.outcomes: list[TrialOutcome] = []
        self.final_outcomes: dict[str, TrialOutcome] = {}
        self.final_metrics: dict[str, dict[str, Any]] = {}  # per study: its final runs and their test metrics

    # --- studies -----------------------------------------------------------------------------------

    def open_study(self, arm: list[str]) -> optuna.Study:
        sweeper = self.sweeper
        name = self.plan.study_name(sweeper.study_name, arm)
        existed = name is not None and optuna_storage.study_exists(self.storage, name)
        study = optuna.create_study(study_name=name, storage=self.storage, sampler=self._sampler(),
                                    pruner=sweeper.pruner, directions=sweeper.directions, load_if_exists=True)
        check_direction(self.storage, study.study_name, sweeper.directions, self.where)
        fixed = [mask_userinfo(o) for o in self.plan.fixed]  # kept in the study, for anyone who can read it
        if existed:
            retry_orphaned_trials(study, *([self.tracking.parent.ledger.gone] if self.tracking else []))
            trials = study.get_trials(deepcopy=False)
            states = Counter(t.state.name for t in trials)
            log.info("study %r in %s: resuming with %d trials (%s); adding %d", study.study_name, self.where,
                     len(trials), ", ".join(f"{n} {s}" for s, n in sorted(states.items())) or "none",
                     sweeper.n_trials)
            before = study.user_attrs.get("fixed_overrides")
            if before is not None and sorted(before) != sorted(fixed):
                log.warning("study %r was started with the overrides [%s], this run has [%s]: their trials may "
                            "not be comparable (set hydra.sweeper.study_name for a separate study)",
                            study.study_name, " ".join(before), " ".join(fixed))
        else:
            log.info("study %r in %s: new, %d trials", study.study_name, self.where, sweeper.n_trials)
            study.set_user_attr("fixed_overrides", fixed)
        names = self._metric_names()
        if names and study.metric_names is None:  # optuna-dashboard then says val_acc, not "Objective 0"
            study.set_metric_names(names)
        if arm and study.user_attrs.get("arm") != self.plan.arm_label(arm):
            study.set_user_attr("arm", self.plan.arm_label(arm))  # the jobs tag their runs with it
        log.info("sampler %s, pruner %s, direction %s", type(study.sampler).__name__,
                 type(sweeper.pruner).__name__, ", ".join(sweeper.directions))
        return study

    def _metric_names(self) -> list[str] | None:
        """bn_study's objective metric, once per direction; None for another app (it has no such key)."""
        objective = self.sweeper.config.get("objective") if self.project else None
        if objective is None or len(self.sweeper.directions) != 1:
            return None
        return [str(objective.metric)]

    def _sampler(self) -> Any:
        sampler = self.sweeper.sampler
        if not isinstance(sampler, functools.partial):
            return copy.deepcopy(sampler)  # a sampler a user's own config built: each study draws from a copy
        # each study builds its own (same seed, same sequence); a nested sampler is copied, not shared
        made = functools.partial(sampler.func, *sampler.args, **copy.deepcopy(sampler.keywords))
        return made(search_space=self._grid()) if _is_grid(sampler) else made()

    def _grid(self) -> dict[str, list[Any]]:
        return {name: optuna_space.grid_values(name, d, self.sweeper.grid_includes_stop)
                for name, d in self.plan.space.items()}

    def _trials_to_ask(self) -> int:
        n = self.sweeper.n_trials
        if _is_grid(self.sweeper.sampler):
            size = optuna_space.grid_size(self._grid())
            if size < n:
                log.info("the grid has %d points: asking %d trials instead of %d", size, size, n)
            n = min(n, size)
        return n

    # --- the search --------------------------------------------------------------------------------

    def search_all(self) -> None:
        for arm in self.plan.arms:
            study = self.open_study(arm)
            self.studies.append((arm, study))
            rows = self.search(arm, study)
            if rows:
                print_summary(rows, title=f"optuna study {study.study_name!r}: trials of this run")
            if self.tracking is not None:
                self.tracking.log_study(study, self.plan.arm_label(arm) or None)
            trial_log.log_best(study)

    def search(self, arm: list[str], study: optuna.Study) -> list[JobRow]:
        rows: list[JobRow] = []
        to_go = self._trials_to_ask()
        while to_go > 0:
            size = min(self.sweeper.n_jobs, to_go)
            trials = [study.ask(fixed_distributions=self.plan.space) for _ in range(size)]
            for trial in trials:
                claim(trial)
            told: dict[int, TrialState] = {}
            start = len(self.outcomes)
            try:
                for trial in trials:
                    self._configure(trial)
                rows.extend(self._run_batch(arm, study, trials, told))
            finally:  # interrupted or broken: no trial of this batch stays RUNNING in the storage
                for trial in trials:
                    if trial.number not in told:
                        study.tell(trial, state=TrialState.FAIL, skip_if_finished=True)
                if self.tracking is not None:
                    try:
                        self.tracking.mirror_states(study.study_name, told)
                    except Exception as err:  # a missing tag must not end a search
                        log.warning("could not tag the trials' MLflow runs with their Optuna state: %s", err)
            self._check_failure_rate(self.outcomes[start:])
            to_go -= size
        return rows

    def _configure(self, trial: optuna.Trial) -> None:
        """Hydra's plugin's order: the space (sampled by ``ask``), the fixed values as user attributes, then
        the ``custom_search_space`` function, which may not suggest a fixed key."""
        fixed = self.plan.fixed_values
        for key, value in fixed.items():
            trial.set_user_attr(key, mask_userinfo(value))
        extend = self.sweeper.custom_search_space
        if extend is None:
            return
        extend(self.sweeper.config, trial)
        overlap = sorted(set(trial.params) & set(fixed))
        if overlap:
            raise UserError(f"hydra.sweeper.custom_search_space suggests {', '.join(overlap)}, which "
                            f"{'is' if len(overlap) == 1 else 'are'} fixed by the overrides "
                            f"({' '.join(f'{k}={fixed[k]}' for k in overlap)}); drop one of the two.")

    def _run_batch(self, arm: list[str], study: optuna.Study, trials: list[optuna.Trial],
                   told: dict[int, TrialState]) -> list[JobRow]:
        study_id = self.storage.get_study_id_from_name(study.study_name)
        jobs = {t.number: self.plan.trial_job(arm, t.params, study_id, t.number) for t in trials}
        outcomes: dict[int, TrialOutcome] = {}
        if self.project:  # a combination the up-front check could not see (norm=bn4 with model=book, say)
            for trial in trials:
                reason = self._invalid(jobs[trial.number], trial.number)
                if reason:
                    outcomes[trial.number] = TrialOutcome("invalid", TrialState.FAIL, None, reason)
        launched = [t for t in trials if t.number not in outcomes]
        returns = self.sweeper.launch([jobs[t.number] for t in launched]) if launched else []
        for trial, ret in zip(launched, returns):
            outcomes[trial.number] = optuna_outcome.classify(ret, len(self.sweeper.directions))
        rows = []
        for trial in trials:
            outcome = outcomes[trial.number]
            self._tell(study, trial, outcome)
            told[trial.number] = outcome.state
            self.outcomes.append(outcome)
            trial_log.log_outcome(study.study_name, trial.number, trial.params, outcome, self._metric_names())
            rows.append(trial_row(trial.number, trial.params, outcome))
        return rows

    def _invalid(self, job: list[str], number: int) -> str | None:
        try:
            self.sweeper.preflight([job], [f"trial {number}"])
        except UserError as err:
            return str(err)
        return None

    @staticmethod
    def _tell(study: optuna.Study, trial: optuna.Trial, outcome: TrialOutcome) -> None:
        try:
            study.tell(trial, values=outcome.values, state=outcome.state, skip_if_finished=True)
        except RuntimeError as err:
            # GridSampler calls Study.stop() when its grid is done, which only works inside optimize();
            # the trial is stored all the same
            if "Study.stop" not in str(err):
                raise

    def _check_failure_rate(self, batch: Sequence[TrialOutcome]) -> None:
        """Stop when more than ``max_failure_rate`` of the batch (Hydra's plugin) or of the run crashed,
        raising the first crashed job's own exception, as the plugin did."""
        judged = list(batch) if self.sweeper.failure_rate_over == "batch" else self.outcomes
        rate = optuna_outcome.failure_rate(judged)
        if rate > self.sweeper.max_failure_rate:
            crashed = [o for o in judged if o.is_failure]
            log.error("%d of %d trials of this %s crashed (%.0f%%), more than hydra.sweeper.max_failure_rate=%s "
                      "allows; the sweep stops with the first crash's error (the tracebacks are in the log above)",
                      len(crashed), len(judged), self.sweeper.failure_rate_over, 100 * rate,
                      self.sweeper.max_failure_rate)
            raise crashed[0].error or RuntimeError(crashed[0].detail)  # an outcome built without its exception

    # --- after the search --------------------------------------------------------------------------

    def final_stage(self) -> None:
        overrides = self.sweeper.final_overrides
        if overrides is None or not self.studies:
            return
        if len(self.sweeper.directions) > 1:
            log.info("multi-objective studies have no single best trial: no final stage")
            return
        pending = []
        for arm, study in self.studies:
            best = best_trial(study)
            if best is None:
                log.warning("study %r has no completed trial: no final run for it", study.study_name)
                continue
            study_id = self.storage.get_study_id_from_name(study.study_name)
            pending.append((study, best, self.plan.final_job(arm, best.params, study_id, best.number)))
        if not pending:
            return
        log.info("final stage: the best params of %d studies, with %s", len(pending), " ".join(overrides))
        rows = []
        for start in range(0, len(pending), self.sweeper.n_jobs):
            chunk = pending[start:start + self.sweeper.n_jobs]
            returns = self.sweeper.launch([job for _, _, job in chunk])
            for (study, best, _), ret in zip(chunk, returns):
                outcome = optuna_outcome.classify(ret, 1)
                self.final_outcomes[study.study_name] = outcome
                if self.tracking is not None:
                    self.final_metrics[study.study_name] = self.tracking.final_metrics(study.study_name)
                trial_log.log_outcome(study.study_name, best.number, best.params, outcome, self._metric_names(),
                                      final=True, measured=self.final_metrics.get(study.study_name, {}).get("test"))
                rows.append(trial_row(best.number, best.params, outcome, prefix=f"{study.study_name}: "))
        print_summary(rows, title="final stage: each study's best params again")

    def final_crashed(self) -> bool:
        return any(o.kind == "crashed" for o in self.final_outcomes.values())

    def state_counts(self) -> dict[str, int]:
        return dict(Counter(o.state.name for o in self.outcomes))

    def results(self) -> dict[str, Any]:
        """``optimization_results.yaml``: Hydra's Optuna plugin's keys, plus one entry per arm."""
        return results_document(self.studies, self.plan.arm_label, self.where, self.final_outcomes,
                                self.state_counts(), self.final_metrics)


def _is_grid(sampler: Any) -> bool:
    return isinstance(sampler, functools.partial) and sampler.func is optuna.samplers.GridSampler
