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
    seed: Optional[int] = None


@dataclass
class TPESamplerConf(SamplerConf):
    _target_: str = "optuna.samplers.TPESampler"
    n_startup_trials: int = 10
    n_ei_candidates: int = 24
    multivariate: Optional[bool] = None
    group: bool = False
    # Trials running in parallel count as "probably bad" while TPE picks the next point.
    constant_liar: bool = True


@dataclass
class RandomSamplerConf(SamplerConf):
    _target_: str = "optuna.samplers.RandomSampler"


@dataclass
class CmaEsSamplerConf(SamplerConf):
    _target_: str = "optuna.samplers.CmaEsSampler"
    n_startup_trials: int = 1
    warn_independent_sampling: bool = True
    consider_pruned_trials: bool = False
    use_separable_cma: bool = False


@dataclass
class QMCSamplerConf(SamplerConf):
    _target_: str = "optuna.samplers.QMCSampler"
    qmc_type: str = "sobol"
    scramble: bool = False


@dataclass
class NSGAIISamplerConf(SamplerConf):
    _target_: str = "optuna.samplers.NSGAIISampler"
    population_size: int = 50
    mutation_prob: Optional[float] = None
    crossover_prob: float = 0.9
    swapping_prob: float = 0.5


@dataclass
class GridSamplerConf(SamplerConf):
    # The sweeper builds the grid from the search space (discrete distributions only) and calls this.
    _target_: str = "optuna.samplers.GridSampler"
    _partial_: bool = True


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
    # Stop the sweep when more than this fraction of its trials crashed (raised an exception).
    max_failure_rate: float = 0.0
    # The search space in Hydra's override grammar, e.g. {optimizer.lr: "tag(log, interval(1e-4, 1))"};
    # a plain value is passed to every trial, null drops the key.
    params: Optional[Dict[str, Any]] = None
    # Stops hopeless trials from the values jobs report per epoch (bn_study does); null = no pruning.
    pruner: Any = MISSING
    # Appended to every search trial's overrides, winning over the command line (data.val=holdout).
    trial_overrides: List[str] = field(default_factory=list)
    # A grid of fixed overrides, e.g. {act: "sigmoid,relu", norm: "none,bn1"}: one study per combination
    # (arm), each tuned alike. A value on the command line (act=relu) narrows that arm.
    arms: Optional[Dict[str, str]] = None
    # After the search: rerun each study's best params once with these overrides (null: no rerun).
    final: Optional[FinalStageConf] = None


_store = ConfigStore.instance()
_store.store(group="hydra/sweeper", name="optuna", node=OptunaSweeperConf, provider="bn_study")
for _name, _node in (("tpe", TPESamplerConf), ("random", RandomSamplerConf), ("cmaes", CmaEsSamplerConf),
                     ("qmc", QMCSamplerConf), ("nsgaii", NSGAIISamplerConf), ("grid", GridSamplerConf)):
    _store.store(group="hydra/sweeper/sampler", name=_name, node=_node, provider="bn_study")
for _name, _node in (("median", MedianPrunerConf), ("percentile", PercentilePrunerConf), ("nop", NopPrunerConf),
                     ("successive_halving", SuccessiveHalvingPrunerConf), ("hyperband", HyperbandPrunerConf),
                     ("threshold", ThresholdPrunerConf)):
    _store.store(group="hydra/sweeper/pruner", name=_name, node=_node, provider="bn_study")
