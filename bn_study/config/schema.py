"""The config's types, as Hydra structured configs: a wrong type is refused when Hydra composes.

``config_schema`` (this module's ``Config``) is the first entry of ``conf/config.yaml``'s defaults list,
so every group file and every override is merged into typed nodes: ``shuffle=maybe``,
``model.hidden=512`` or ``epochs=abc`` stop at composition with the key named. The groups whose
choices differ in shape extend their base here and name their own schema in their defaults list
(``act/leaky_relu.yaml`` → ``/schema/act/leaky_relu``, ``norm/bn1.yaml`` → ``/schema/norm/batch``), the
Hydra way for a group of configs with a static schema each. Values (ranges, choices, the fields that
depend on each other) are ``bn_study.config.rules``' business.

Light on purpose: this module is imported before composition on every start (``--cfg job`` included),
so nothing here may import torch, MLflow or Optuna. Registered on import of ``bn_study.config``.

No ``from __future__ import annotations``: OmegaConf reads the annotations as types.
"""

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING

PRIMARY = "config_schema"  # the name conf/config.yaml's defaults list starts with


# --- groups --------------------------------------------------------------------------------------

@dataclass
class ModelConf:
    name: str = MISSING
    # hidden layer widths, input to output (the article: [512, 256, 128, 64])
    hidden: List[int] = MISSING
    head: str = MISSING  # softmax | sigmoid | leaky_relu
    # how weights and biases are initialised: a choice name or a node of `_target_`s (train/model.py's business)
    init: Any = MISSING
    # index of a test image whose outputs are drawn at the end; null: none
    show_record: Optional[int] = None


@dataclass
class ActConf:
    name: str = MISSING  # sigmoid | relu | leaky_relu | tanh


@dataclass
class LeakyReluActConf(ActConf):
    # also the slope of a leaky_relu head
    negative_slope: float = 0.02


@dataclass
class NormConf:
    kind: str = MISSING  # none | batch | layer
    # BN/LN after the first K hidden layers: a whole number, or "all" (OmegaConf has no int|str union:
    # rules.py checks it)
    layers: Any = 0
    position: str = "after"  # after | before the activation


@dataclass
class LayerNormConf(NormConf):
    eps: float = 1e-5


@dataclass
class BatchNormConf(NormConf):
    eps: float = 1e-5
    momentum: float = 0.1  # PyTorch's convention: Keras's 0.99 is 0.01


@dataclass
class LossConf:
    name: str = MISSING  # ce | mse | bce


@dataclass
class DataConf:
    name: str = MISSING  # mnist | fashion_mnist
    root: str = MISSING
    val: str = "test"  # test | holdout
    limit_train: Optional[int] = None
    sources: List[str] = field(default_factory=lambda: ["local"])
    verify: bool = True  # the files must be the real dataset's (sha256); false: your own IDX files of that shape


# --- top-level nodes -----------------------------------------------------------------------------

@dataclass
class ObjectiveConf:
    metric: str = "val_acc"
    direction: str = "maximize"


@dataclass
class ProbeConf:
    enabled: bool = True
    samples: int = 1000
    every_steps: Optional[int] = 100  # null or 0: no look at the inputs of the nonlinearities
    units: int = 3


@dataclass
class TrackingConf:
    uri: Optional[str] = None
    experiment: str = "bn_study"
    figures: bool = True
    retry_seconds: float = 60.0
    heartbeat_seconds: float = 10.0
    stale_after_seconds: float = 120.0


@dataclass
class Config:
    """The primary config (conf/config.yaml). Defaults live in the YAML files; these are the types."""

    model: ModelConf = MISSING
    act: ActConf = MISSING
    norm: NormConf = MISSING
    # open: `_target_`-style keys of the chosen optimizer, checked by bn_study.train.optim.check_optimizer
    optimizer: Dict[str, Any] = MISSING
    loss: LossConf = MISSING
    data: DataConf = MISSING

    batch_size: int = 128
    epochs: int = 10
    max_steps: Optional[int] = None
    seed: int = 0
    seeds: Optional[List[int]] = None
    shuffle: bool = True
    drop_last: bool = False
    device: str = "auto"
    threads: Any = "auto"  # auto | a whole number
    engine: str = "auto"
    log_every: int = 50
    progress: Any = "auto"  # auto | true | false
    resume: Any = "auto"  # auto | true | false
    checkpoint_dir: str = "checkpoints"
    final_test: bool = False

    objective: ObjectiveConf = field(default_factory=ObjectiveConf)
    probe: ProbeConf = field(default_factory=ProbeConf)
    tracking: TrackingConf = field(default_factory=TrackingConf)
    # an experiment's analysis (bn_study.report.spec reads it from the file); free-form, no run parameter
    report: Optional[Any] = None


def register(store: Optional[ConfigStore] = None) -> None:
    store = store or ConfigStore.instance()
    store.store(name=PRIMARY, node=Config, provider="bn_study")
    # per-choice schemas, in their own groups so that they are never offered as choices of act/ or norm/
    store.store(group="schema/act", name="base", node=ActConf, provider="bn_study")
    store.store(group="schema/act", name="leaky_relu", node=LeakyReluActConf, provider="bn_study")
    store.store(group="schema/norm", name="base", node=NormConf, provider="bn_study")
    store.store(group="schema/norm", name="layer", node=LayerNormConf, provider="bn_study")
    store.store(group="schema/norm", name="batch", node=BatchNormConf, provider="bn_study")


register()
