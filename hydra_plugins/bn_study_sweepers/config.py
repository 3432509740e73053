"""Structured configs that make ``hydra/sweeper=grid`` (the project's default) and ``hydra/sweeper=optuna``
(with ``hydra/sweeper/sampler=…`` and ``hydra/sweeper/pruner=…``) resolvable.

No ``from __future__ import annotations`` here: Hydra executes plugin modules outside sys.modules,
where dataclasses cannot resolve string annotations."""


from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING


@dataclass
class GridSweeperConf:
    _target_: str = "hydra_plugins.bn_study_sweepers.grid.GridSweeper"
    max_batch_size: Optional[int] = None
    params: Optional[Dict[str, str]] = None


ConfigStore.instance().store(group="hydra/sweeper", name="grid", node=GridSweeperConf, provider="bn_study")


# --- hydra/sweeper=optuna: the project's Optuna (>= 5) sweeper, with the keys of Hydra's Optuna plugin ---

@dataclass
class SamplerConf:
    _target_: str = MISSING
    # a factory: each study (one per arm) builds its own sampler from these settings, same seed, same draws
    _partial_: bool = True
    seed: Optional[int] = None


# The samplers take the keys of Hydra's Optuna plugin, with its defaults (TPE multivariate=false); None
# leaves a key to Optuna's own default. The ones the plugin lacked (TPE group, constraints_func; CMA-ES popsize,
# with_margin, lr_adapt; NSGA-II crossover) are Optuna 5's arguments, with Optuna's defaults.

@dataclass
class TPESamplerConf(SamplerConf):
    _target_: str = "optuna.samplers.TPESampler"
    consider_prior: Optional[bool] = None
    prior_weight: Optional[float] = None
    consider_magic_clip: Optional[bool] = None
    consider_endpoints: Optional[bool] = None
    n_startup_trials: int = 10
    n_ei_candidates: int = 24
    # false: each parameter modelled on its own, as in Hydra's plugin (Optuna 5 alone would model them jointly)
    multivariate: Optional[bool] = False
    warn_independent_sampling: Optional[bool] = None
    group: bool = False
    # Trials running in parallel count as "probably bad" while TPE picks the next point (Optuna 5's default).
    constant_liar: bool = True
    constraints_func: Optional[Any] = None


@dataclass
class RandomSamplerConf(SamplerConf):
    _target_: str = "optuna.samplers.RandomSampler"


@dataclass
class CmaEsSamplerConf(SamplerConf):
    # needs the `cmaes` package, a dependency of bn_study
    _target_: str = "optuna.samplers.CmaEsSampler"
    x0: Optional[Dict[str, Any]] = None
    sigma0: Optional[float] = None
    n_startup_trials: int = 1
    independent_sampler: Optional[Any] = None
    warn_independent_sampling: bool = True
    consider_pruned_trials: bool = False
    restart_strategy: Optional[Any] = None
    popsize: Optional[int] = None
    # -1: Optuna's default; the plugin's 2 is deprecated in Optuna 5 along with restart_strategy
    inc_popsize: int = -1
    use_separable_cma: bool = False
    with_margin: bool = False
    lr_adapt: bool = False
    source_trials: Optional[Any] = None


@dataclass
class QMCSamplerConf(SamplerConf):
    _target_: str = "optuna.samplers.QMCSampler"
    qmc_type: str = "sobol"
    scramble: bool = False
    independent_sampler: Optional[Any] = None
    warn_asynchronous_seeding: bool = True
    warn_independent_sampling: bool = True


@dataclass
class NSGAIISamplerConf(SamplerConf):
    _target_: str = "optuna.samplers.NSGAIISampler"
    population_size: int = 50
    mutation_prob: Optional[float] = None
    crossover: Optional[Any] = None
    crossover_prob: float = 0.9
    swapping_prob: float = 0.5
    constraints_func: Optional[Any] = None


@dataclass
class GPSamplerConf(SamplerConf):
    # Gaussian-process Bayesian optimisation; needs torch and scipy, both dependencies of bn_study
    _target_: str = "optuna.samplers.GPSampler"
    independent_sampler: Optional[Any] = None
    n_startup_trials: int = 10
    deterministic_objective: bool = False
    constraints_func: Optional[Any] = None
    warn_independent_sampling: bool = True


@dataclass
class MOTPESamplerConf(SamplerConf):
    # Optuna 4.0 removed MOTPESampler; choosing it says so, in the plugin's words, and names the way out
    _target_: str = "bn_study.sweep.samplers.motpe_removed"
    _partial_: bool = False  # called when the config is read: the sweep stops before any trial


@dataclass
class GridSamplerConf(SamplerConf):
    # The sweeper builds the grid from the search space (discrete distributions only) and calls this.
    _target_: str = "optuna.samplers.GridSampler"


@dataclass
class MedianPrunerConf:
    _target_: str = "optuna.pruners.MedianPruner"
    # No pruning until this many trials have completed, nor before this epoch.
    n_startup_trials: int = 5
    n_warmup_steps: int = 0
    interval_steps: int = 1
    n_min_trials: int = 1


@dataclass
class PercentilePrunerConf(MedianPrunerConf):  # the median is Optuna's percentile 50: the same knobs, plus this one
    _target_: str = "optuna.pruners.PercentilePruner"
    percentile: float = 25.0


@dataclass
class NopPrunerConf:
    _target_: str = "optuna.pruners.NopPruner"


@dataclass
class SuccessiveHalvingPrunerConf:
    _target_: str = "optuna.pruners.SuccessiveHalvingPruner"
    min_resource: Any = "auto"
    reduction_factor: int = 4
    min_early_stopping_rate: int = 0
    bootstrap_count: int = 0


@dataclass
class HyperbandPrunerConf:
    _target_: str = "optuna.pruners.HyperbandPruner"
    min_resource: int = 1
    max_resource: Any = "auto"
    reduction_factor: int = 3
    bootstrap_count: int = 0


@dataclass
class ThresholdPrunerConf:
    # e.g. lower=0.5 stops a maximised val_acc still under 50 % after n_warmup_steps epochs
    _target_: str = "optuna.pruners.ThresholdPruner"
    lower: Optional[float] = None
    upper: Optional[float] = None
    n_warmup_steps: int = 0
    interval_steps: int = 1


@dataclass
class FinalStageConf:
    # Overrides for the rerun of each study's best params after the search (e.g. data.val=test).
    overrides: List[str] = field(default_factory=list)


@dataclass
class OptunaSweeperConf:
    _target_: str = "hydra_plugins.bn_study_sweepers.optuna_sweeper.OptunaSweeper"
    defaults: List[Any] = field(default_factory=lambda: [{"sampler": "tpe"}, {"pruner": "median"}])

    sampler: Any = MISSING
    # minimize | maximize, or a list of them (multi-objective: the task returns one value per direction)
    direction: Any = "minimize"
    # null: in memory (this process only). A URL (sqlite:///optuna.db, postgresql://…) is an RDB storage;
    # any other string is an Optuna journal file. Relative paths are relative to the launch directory.
    storage: Optional[str] = None
    study_name: Optional[str] = None
    # Trials asked per invocation (per arm); re-running the command on a stored study adds as many again.
    n_trials: int = 20
    # Trials per batch, launched together (in parallel with hydra/launcher=joblib).
    n_jobs: int = 2
    # Stop the sweep when more than this fraction of a batch's trials crashed (raised an exception); the
    # sweep ends with the first crashed job's own error.
    max_failure_rate: float = 0.0
    # batch: the fraction of each batch of n_jobs trials (Hydra's plugin); run: of all this run's trials so far.
    failure_rate_over: str = "batch"
    # A single-objective study with no completed trial at the end is an error (exit 1), as in the plugin;
    # false: exit 0 with best_params: null in optimization_results.yaml.
    require_completed: bool = True
    # The search space in Hydra's override grammar, e.g. {optimizer.lr: "tag(log, interval(1e-4, 1))"};
    # a plain value is passed to every trial, null drops the key.
    params: Optional[Dict[str, Any]] = None
    # A key both fixed and searched is fixed, wherever each was written (the plugin); true: the later
    # override wins whatever its kind (x=choice(1,2) on the command line searches an x that params fixes).
    last_override_wins: bool = False
    # The dotted path of a function f(cfg, trial) that suggests more params after the space is sampled
    # (Hydra's plugin's custom_search_space), e.g. my_app.configure.
    custom_search_space: Optional[str] = None
    # The grid sampler walks a range's points before its stop (the plugin); true: up to and including it.
    grid_includes_stop: bool = False
    # Stops hopeless trials from the values jobs report per epoch (bn_study does); null = no pruning.
    pruner: Any = MISSING
    # Appended to every search trial's overrides, winning over the command line (data.val=holdout).
    trial_overrides: List[str] = field(default_factory=list)
    # A grid of fixed overrides, e.g. {act: "sigmoid,relu", norm: "none,bn1"}: one study per combination
    # (arm), each tuned alike. A value on the command line (act=relu) narrows that arm. Empty, not null, so
    # that hydra.sweeper.arms={act:'sigmoid,relu'} works on the command line (OmegaConf cannot merge into null).
    arms: Dict[str, str] = field(default_factory=dict)
    # After the search: rerun each study's best params once with these overrides (null: no rerun).
    final: Optional[FinalStageConf] = None


_store = ConfigStore.instance()
_store.store(group="hydra/sweeper", name="optuna", node=OptunaSweeperConf, provider="bn_study")
for _name, _node in (("tpe", TPESamplerConf), ("random", RandomSamplerConf), ("cmaes", CmaEsSamplerConf),
                     ("qmc", QMCSamplerConf), ("nsgaii", NSGAIISamplerConf), ("gp", GPSamplerConf),
                     ("grid", GridSamplerConf), ("motpe", MOTPESamplerConf)):
    _store.store(group="hydra/sweeper/sampler", name=_name, node=_node, provider="bn_study")
for _name, _node in (("median", MedianPrunerConf), ("percentile", PercentilePrunerConf), ("nop", NopPrunerConf),
                     ("successive_halving", SuccessiveHalvingPrunerConf), ("hyperband", HyperbandPrunerConf),
                     ("threshold", ThresholdPrunerConf)):
    _store.store(group="hydra/sweeper/pruner", name=_name, node=_node, provider="bn_study")
