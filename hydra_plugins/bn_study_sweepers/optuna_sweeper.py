"""``hydra/sweeper=optuna``: Hydra's Optuna sweeper, rebuilt on Optuna >= 5 with ask/tell.

It takes the keys and the search grammar of Hydra's Optuna plugin (``direction``, ``study_name``,
``storage``, ``n_trials``, ``n_jobs``, ``sampler``, ``max_failure_rate``, ``params``; see
``optuna_space`` for the grammar) and adds what that plugin lacks:

- a ``pruner`` (median by default): jobs report each epoch to their trial (``bn_study.trial``);
- any Optuna storage, resumed on every run: each invocation adds ``n_trials`` trials, and several
  processes may share one storage (``optuna_storage``);
- outcomes told truthfully (``optuna_outcome``): NaN is a FAIL trial and the study goes on, a pruned
  job is PRUNED, a crash is FAIL with its traceback in the log and counts towards ``max_failure_rate``;
- ``trial_overrides``: forced on every search trial (bn_study: tune on the held-out split);
- ``arms``: a grid of fixed overrides (``{act: "sigmoid,relu", norm: "none,bn1"}``), one study per
  combination (a fair comparison: each arm tuned alike); the command line may narrow one (``act=relu``);
- ``final``: after the search, each study's best params run once more with ``final.overrides``
  (bn_study: measured on the test set, over several seeds).

Run on bn_study's own config, every job's config is checked before anything is written (a bad value →
one sentence, exit 2), the invocation is an MLflow parent run with the trials as its children, the
trials' states are mirrored onto their runs, and the parent gets the best params and Optuna's figures
(``optuna_mlflow``). On any other Hydra app it is a plain Optuna sweeper.

Searches started in the same second (several processes sharing one storage) would share Hydra's
timestamped sweep dir, their job dirs and the MLflow parent file in it: a search finding its sweep dir
held by another live one moves to ``<dir>_1`` and passes that to its jobs (``optuna_sweep_dir``).

This module is the plugin's face (config → checks → setup); the ask/launch/tell loop and the final
stage are ``optuna_run``, each job's overrides ``optuna_plan``.
"""

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hydra.core.plugins import Plugins
from hydra.core.utils import JobReturn
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf, open_dict, read_write

from bn_study.errors import UserError

# Optuna and the search modules (which import it) load when a sweep starts, not at Hydra's plugin scan,
# which imports this module on every start, `--cfg job` included.
if TYPE_CHECKING:
    from bn_study.sweep.plan import SearchPlan
    from bn_study.sweep.search import SweepRun

log = logging.getLogger(__name__)

DIRECTIONS = ("minimize", "maximize")
FAILURE_RATE_OVER = ("batch", "run")
RESULTS_FILE = "optimization_results.yaml"


class TracedTask:
    """The task function, unchanged, except that a crash records its traceback on the exception: a
    joblib worker sends the exception back without it, and the sweeper must log it."""

    def __init__(self, task: TaskFunction) -> None:
        self.task = task

    def __call__(self, cfg: DictConfig) -> Any:
        import optuna

        from bn_study.sweep import trial_outcome as optuna_outcome

        try:
            return self.task(cfg)
        except optuna.TrialPruned:
            raise
        except Exception as exc:
            optuna_outcome.keep_traceback(exc)
            raise


class OptunaSweeper(Sweeper):
    def __init__(self, sampler: Any, direction: Any, storage: str | None, study_name: str | None,
                 n_trials: int, n_jobs: int, max_failure_rate: float = 0.0, params: Any = None,
                 pruner: Any = None, trial_overrides: Sequence[str] = (), arms: Any = None,
                 final: Any = None, custom_search_space: str | None = None, failure_rate_over: str = "batch",
                 grid_includes_stop: bool = False, last_override_wins: bool = False,
                 require_completed: bool = True) -> None:
        self.sampler = sampler
        self.directions = _directions(direction)
        self.storage_spec = storage
        self.study_name = None if study_name is None else str(study_name)
        self.n_trials = _whole("n_trials", n_trials, 0)
        self.n_jobs = _whole("n_jobs", n_jobs, 1)
        if isinstance(max_failure_rate, bool) or not isinstance(max_failure_rate, (int, float)) \
                or not 0.0 <= max_failure_rate <= 1.0:
            raise UserError(f"hydra.sweeper.max_failure_rate={max_failure_rate!r} is not allowed; "
                            "it must be a number from 0.0 to 1.0.")
        self.max_failure_rate = float(max_failure_rate)
        if failure_rate_over not in FAILURE_RATE_OVER:
            raise UserError(f"hydra.sweeper.failure_rate_over={failure_rate_over!r} is not allowed; choose "
                            "batch (each batch of n_jobs trials, as Hydra's plugin) or run (all trials so far).")
        self.failure_rate_over = str(failure_rate_over)
        from bn_study.sweep.space import load_custom_search_space

        self.custom_search_space = load_custom_search_space(custom_search_space)
        self.grid_includes_stop = bool(grid_includes_stop)
        self.last_override_wins = bool(last_override_wins)
        self.require_completed = bool(require_completed)
        self.params = _plain(params) or {}
        if pruner is None:
            import optuna

            pruner = optuna.pruners.NopPruner()
        self.pruner = pruner
        self.trial_overrides = [str(o) for o in (trial_overrides or [])]
        self.arms = {str(k): str(v) for k, v in (_plain(arms) or {}).items()} or None
        final = _plain(final)
        self.final_overrides = None if final is None else [str(o) for o in final.get("overrides") or []]
        self.config: DictConfig | None = None
        self.hydra_context: HydraContext | None = None
        self.launcher: Any = None
        self.job_idx = 0
        self.job_overrides: list[str] = []  # added to every job (a sweep dir of its own, when it had to move)

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.config = config
        self.hydra_context = hydra_context
        self.launcher = Plugins.instance().instantiate_launcher(
            config=config, hydra_context=hydra_context, task_function=TracedTask(task_function))
        self.job_idx = 0

    # --- the sweep ---------------------------------------------------------------------------------

    def sweep(self, arguments: list[str]) -> None:
        from bn_study.sweep.plan import SearchPlan
        from bn_study.sweep.results import without_completed_trial

        assert self.config is not None and self.launcher is not None
        import optuna

        # Optuna's own lines ("Using an existing study …") through Hydra's logging, in every other line's format
        optuna.logging.disable_default_handler()
        optuna.logging.enable_propagation()
        config = self.config
        plan = SearchPlan.build(arguments, self.params, self.arms, self.trial_overrides, self.final_overrides,
                                last_override_wins=self.last_override_wins)
        project = is_bn_study(config)
        if project:
            # every mistake a user can make stops here, before a study, a file or a run exists; searches that
            # start at once on a fresh sqlite store take turns while it is built (bn_study.tracking.store.connect)
            self.check(plan)
        run = self._start(plan, project)
        tracking = run.tracking
        try:
            run.search_all()
            run.final_stage()
        except KeyboardInterrupt:
            if tracking is not None:
                tracking.interrupted()
            raise
        except BaseException:
            if tracking is not None:
                tracking.finish(failed=True)
            raise
        results = run.results()
        OmegaConf.save(OmegaConf.create(results), Path(str(config.hydra.sweep.dir)) / RESULTS_FILE)
        final_crashed = run.final_crashed()
        empty = without_completed_trial(run.studies) if self.require_completed else []
        if tracking is not None:
            tracking.log_results(results)
            tracking.set_tags({f"trials_{state}": n for state, n in run.state_counts().items()})
            tracking.finish(failed=final_crashed or bool(empty))
        if final_crashed:
            log.error("a final-stage job crashed; see its traceback above")
            raise SystemExit(1)
        if empty:
            from bn_study.errors import SweepFailed

            # Hydra's plugin ended here with Optuna's "No trials are completed yet" and exit 1
            raise SweepFailed(f"no trials are completed yet in study {', '.join(map(repr, empty))}: there is no best "
                              f"trial ({RESULTS_FILE} says best_params: null; hydra.sweeper.require_completed=false "
                              "ends such a sweep with exit 0)")
        return None

    def _start(self, plan: "SearchPlan", project: bool) -> "SweepRun":
        """Storage, sweep dir and (for bn_study) the MLflow parent run: everything before the trials."""
        from bn_study.sweep import storage as optuna_storage, sweep_dir as optuna_sweep_dir
        from bn_study.sweep.search import SweepRun, check_direction

        config = self.config
        assert config is not None
        launch_dir = str(config.hydra.runtime.cwd)
        resolved = optuna_storage.resolve_storage(self.storage_spec, launch_dir)
        storage = optuna_storage.open_storage(self.storage_spec, launch_dir) if resolved is not None \
            else optuna_storage.new_in_memory_storage()
        if resolved is None and type(self.launcher).__name__ != "BasicLauncher":
            log.warning("hydra.sweeper.storage is null: the study lives in this process only, so jobs run by "
                        "%s cannot report their epochs to it (no pruning); set a storage to share it",
                        type(self.launcher).__name__)
        for name in plan.study_names(self.study_name) if self.study_name is not None else []:
            check_direction(storage, name, self.directions, optuna_storage.display(resolved))
        sweep_dir = optuna_sweep_dir.claim_sweep_dir(Path(str(config.hydra.sweep.dir)))
        if sweep_dir != Path(str(config.hydra.sweep.dir)):
            # another search started in the same second: same timestamped dir, same job dirs, same MLflow
            # parent file. This one moves next door, and so do its jobs.
            log.info("sweep dir %s is in use by another search; this one uses %s", config.hydra.sweep.dir, sweep_dir)
            with read_write(config.hydra), open_dict(config.hydra):
                config.hydra.sweep.dir = str(sweep_dir)
            self.job_overrides = [f"hydra.sweep.dir={optuna_sweep_dir.quoted_override_value(str(sweep_dir))}"]
        tracking = None
        if project:
            from bn_study.util.redact import save_masked

            save_masked(config, sweep_dir / "multirun.yaml")
            from bn_study.sweep.mlflow_mirror import SweepTracking

            tracking = SweepTracking(config, {"sweeper": "optuna", "optuna_storage": optuna_storage.display(resolved),
                                              "optuna_studies": ", ".join(plan.study_names(self.study_name))})
        return SweepRun(self, plan, storage, resolved, tracking, project)

    def check(self, plan: "SearchPlan") -> None:
        """Everything checked before the setup: the storage's location, the launcher, and jobs that touch every
        choice and bound of the search space (per arm) plus each arm's final job."""
        from bn_study.config.rules import check_optuna_storage
        from bn_study.sweep import storage as optuna_storage

        assert self.config is not None
        from bn_study.errors import UserError
        from bn_study.sweep.sequential import sequential_spec

        if sequential_spec(self.config) is not None:
            raise UserError("report.sequential is set, but only the grid sweeper adds seeds look by look; a tuned "
                            "study's final runs use the seeds it names (set report.sequential=null, or use "
                            "hparams_search=grid).")
        launch_dir = str(self.config.hydra.runtime.cwd)
        check_optuna_storage(optuna_storage.resolve_storage(self.storage_spec, launch_dir), launch_dir)
        probes = plan.probes()
        self.preflight([job for job, _ in probes], [label for _, label in probes])

    def preflight(self, jobs: list[list[str]], labels: list[str]) -> None:
        from hydra.errors import CompactHydraException

        from bn_study.errors import describe_config_error
        from bn_study.preflight import preflight
        from bn_study.sweep.compose import compose_jobs

        assert self.config is not None
        configs = []
        for job, label in zip(jobs, labels):
            try:
                configs.extend(compose_jobs(self, [job]))
            except CompactHydraException as err:  # a value of the wrong type in the search space
                raise UserError(f"{label}: {describe_config_error(err)}") from None
        preflight(configs, self.config.hydra.runtime.cwd, labels, launcher=self.config.hydra.launcher)

    def launch(self, jobs: list[list[str]]) -> Sequence[JobReturn]:
        jobs = [[*job, *self.job_overrides] for job in jobs]
        returns = self.launcher.launch(jobs, initial_job_idx=self.job_idx)
        self.job_idx += len(returns)
        return returns


# --- helpers ---------------------------------------------------------------------------------------

def is_bn_study(config: DictConfig) -> bool:
    """Run on bn_study's config (not on some other Hydra app): MLflow, preflight, stages apply."""
    return all(OmegaConf.select(config, key) is not None for key in ("tracking.experiment", "objective.metric",
                                                                     "data.name"))


def _directions(direction: Any) -> list[str]:
    items = _plain(direction)
    items = items if isinstance(items, list) else [items]
    names = [getattr(d, "name", d) for d in items]
    names = [str(n).lower() for n in names]
    if not names or any(n not in DIRECTIONS for n in names):
        raise UserError(f"hydra.sweeper.direction={direction!r} is not allowed; choose minimize or maximize "
                        "(or a list of them, one per objective).")
    return names


def _whole(key: str, value: Any, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise UserError(f"hydra.sweeper.{key}={value!r} is not allowed; it must be a whole number >= {low}.")
    return value


def _plain(node: Any) -> Any:
    """OmegaConf containers as plain Python values."""
    if OmegaConf.is_config(node):
        return OmegaConf.to_container(node, resolve=True)
    return node

