"""Every value a user can get wrong, checked before anything runs or is written.

The schema (``bn_study.config.schema``) already refused wrong types while Hydra composed; these are the
value rules: ranges, finite numbers, choices, the fields that depend on each other (BN depth and the
hidden layers, the loss and the head, BN at batch 1), the paths and the tracking store. Each check raises
``UserError`` with one sentence naming the key, the value and what is allowed.

``validate_config`` checks one job's config; the sweepers run it (through ``bn_study.preflight``) for every job
of a grid, and for every choice and bound of an Optuna search space, before the first one trains.
``bn_study.config.launcher`` checks the launcher's settings of a multirun. Where things are written (a directory, a
tracking URI, an Optuna storage) is checked in ``bn_study.config.places``, called and exported from here.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from bn_study.data import SOURCE_NAMES, VAL_SPLITS, check_root_writable
from bn_study.data.catalog import DATASETS, HOLDOUT_SIZE, get_dataset, val_size
from bn_study.config.places import check_directory_writable, check_optuna_storage, check_tracking_uri
from bn_study.errors import UserError, describe_config_error
from bn_study.train.device import resolve_device
from bn_study.train.engines import ENGINES, resolve_engine
from bn_study.train.loop import epoch_steps
from bn_study.train.losses import LOSSES
from bn_study.train.model import ACTIVATIONS, HEADS, NORM_KINDS, POSITIONS, check_init
from bn_study.train.optim import check_optimizer
from bn_study.util.overrides import bare_key

METRICS = ("val_acc", "val_loss", "train_acc", "train_loss")
DIRECTIONS = ("minimize", "maximize")
HEAD_FOR_LOSS = {"ce": ("softmax",), "mse": ("sigmoid", "leaky_relu"), "bce": ("sigmoid",)}
SEED_MAX = 2**64 - 1  # torch.manual_seed's largest
__all__ = ["validate_config", "check_tracking_uri", "check_optuna_storage",
           "check_directory_writable", "resolve_device", "train_size", "val_size", "member_seeds"]


# --- one value -----------------------------------------------------------------------------------

def _one_of(key: str, value: Any, allowed: tuple[Any, ...]) -> None:
    if value not in allowed:
        names = ", ".join("null" if a is None else str(a) for a in allowed)
        raise UserError(f"{key}={value!r} is not allowed; choose one of: {names}.")


def _is_whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _whole(key: str, value: Any, low: int, high: int | None = None, what: str = "") -> int:
    if not _is_whole(value) or value < low or (high is not None and value > high):
        span = f">= {low}" if high is None else f"from {low} to {high}"
        raise UserError(f"{key}={value!r} is not allowed; it must be a whole number {span}{what}.")
    return value


def _number(key: str, value: Any, *, low: float | None = None, high: float | None = None,
            low_open: bool = False, what: str = "") -> float:
    """A finite number in [low, high] (or (low, high] with ``low_open``)."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if ok and low is not None:
        ok = value > low if low_open else value >= low
    if ok and high is not None:
        ok = value <= high
    if not ok:
        if low is not None and high is not None:
            span = f" in {'(' if low_open else '['}{low:g}, {high:g}]"
        elif low is not None:
            span = f" {'>' if low_open else '>='} {low:g}"
        else:
            span = ""
        raise UserError(f"{key}={value!r} is not allowed; it must be a finite number{span}{what}.")
    return float(value)


def _text(key: str, value: Any, what: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise UserError(f"{key}={value!r} is not allowed; it must be {what}.")
    return value


# --- values the task asks for ----------------------------------------------------------------------

def train_size(name: str, val: str, limit_train: int | None) -> int:
    """How many images one epoch walks through, known from the config alone."""
    available = get_dataset(name).train_size - (HOLDOUT_SIZE if val == "holdout" else 0)
    if limit_train is not None and limit_train > available:
        raise UserError(f"data.limit_train={limit_train} is more than the {available} training images of "
                        f"{name} with data.val={val}; allowed: 1..{available}.")
    return limit_train or available


def member_seeds(cfg: DictConfig) -> tuple[int, ...]:
    """The seeds this job trains: ``seeds`` when given (one batched model), else ``seed``."""
    if cfg.seeds is None:
        return (_whole("seed", cfg.seed, 0, SEED_MAX),)
    seeds = list(cfg.seeds) if not isinstance(cfg.seeds, int) else None
    if not seeds or any(not _is_whole(s) or not 0 <= s <= SEED_MAX for s in seeds):
        raise UserError(f"seeds={cfg.seeds!r} is not allowed; give a non-empty list of whole numbers >= 0, e.g. seeds=[0,1,2,3,4].")
    if len(set(seeds)) != len(seeds):
        raise UserError(f"seeds={seeds} repeats a seed; each seed must appear once.")
    return tuple(seeds)


# --- the whole config ------------------------------------------------------------------------------

def validate_config(cfg: DictConfig, *, check_paths: bool = True, launch_dir: str | Path | None = None) -> None:
    """Raise ``UserError`` for the first bad value in a composed config.

    ``check_paths``: also whether data.root, checkpoint_dir and a local tracking store can be written
    (relative paths count from ``launch_dir``, default the working directory)."""
    try:
        _validate(cfg, check_paths, Path(launch_dir) if launch_dir is not None else Path.cwd())
    except OmegaConfBaseException as err:  # a value that cannot even be read (an interpolation to nowhere)
        raise UserError(describe_config_error(err, cfg)) from None


def _check_boolean_overrides(cfg: DictConfig) -> None:
    """OmegaConf reads any number as a bool (``shuffle=5`` is true): on the command line, a key whose value
    is a bool may only be set to true or false."""
    overrides = OmegaConf.select(cfg, "hydra.overrides.task", default=None)
    if not overrides:
        return
    from hydra.core.override_parser.overrides_parser import OverridesParser

    for override in OverridesParser.create().parse_overrides([str(o) for o in overrides]):
        if override.is_sweep_override() or override.is_delete():
            continue
        key, value = bare_key(override.key_or_group), override.value()
        if isinstance(value, (int, float)) and not isinstance(value, bool) \
                and isinstance(OmegaConf.select(cfg, key, default=None), bool):
            raise UserError(f"{key}={value} is not allowed; it must be true or false.")


def _validate(cfg: DictConfig, check_paths: bool, launch_dir: Path) -> None:
    _check_boolean_overrides(cfg)
    _one_of("data.name", cfg.data.name, tuple(DATASETS))  # first: the sizes of its splits bound other values
    _check_model(cfg)
    _check_norm(cfg)
    _check_loss(cfg)
    check_optimizer(cfg.optimizer)
    _check_run(cfg)
    _check_data(cfg)
    _check_objective_and_probe(cfg)
    _check_tracking(cfg, check_paths, launch_dir)
    if check_paths:
        check_root_writable(cfg.data.root)
        check_directory_writable("checkpoint_dir", cfg.checkpoint_dir, launch_dir,
                                 "the job's checkpoints are written there after every epoch")


def _check_model(cfg: DictConfig) -> None:
    model, act = cfg.model, cfg.act
    _one_of("act.name", act.name, ACTIVATIONS)
    if "negative_slope" in act:
        _number("act.negative_slope", act.negative_slope)
    _one_of("model.head", model.head, HEADS)
    check_init(model.init)
    if not model.hidden or any(not _is_whole(h) or h < 1 for h in model.hidden):
        raise UserError(f"model.hidden={list(model.hidden)} is not allowed; give a non-empty list of layer widths >= 1.")
    if model.show_record is not None:
        test = get_dataset(cfg.data.name).test_size
        _whole("model.show_record", model.show_record, 0, test - 1,
               f" (an index into the {test} test images), or null")


def _check_norm(cfg: DictConfig) -> None:
    norm, model = cfg.norm, cfg.model
    _one_of("norm.kind", norm.kind, NORM_KINDS)
    _one_of("norm.position", norm.position, POSITIONS)
    depth = len(model.hidden)
    if norm.kind == "none":
        if norm.layers != 0:
            raise UserError(f"norm.layers={norm.layers!r} is not allowed with norm.kind=none; it must be 0 "
                            "(norm=bn1..bn4 or ln put norm layers in).")
        return
    short = "bn" if norm.kind == "batch" else "ln"
    if norm.layers != "all":
        layers = _whole("norm.layers", norm.layers, 1, what=', or "all"')
        if layers > depth:
            raise UserError(
                f"norm={short}{layers} puts a norm layer after {layers} hidden layers, but model={model.name} "
                f"has {depth} ({list(model.hidden)}); allowed: {short}1..{short}{depth}, ln or none.")
    needed = ("eps", "momentum") if norm.kind == "batch" else ("eps",)
    missing = [k for k in needed if k not in norm]
    if missing:
        raise UserError(f"norm.kind={norm.kind} needs norm.{' and norm.'.join(missing)}, which this norm config "
                        f"lacks; choose norm={'bn1..bn4' if norm.kind == 'batch' else 'ln'} instead of setting norm.kind.")
    _number("norm.eps", norm.eps, low=0, low_open=True)
    if norm.kind == "batch":
        _number("norm.momentum", norm.momentum, low=0, high=1,
                what=" (PyTorch's BN momentum: Keras's 0.99 is 0.01)")


def _check_loss(cfg: DictConfig) -> None:
    model, act = cfg.model, cfg.act
    _one_of("loss.name", cfg.loss.name, LOSSES)
    heads = HEAD_FOR_LOSS[cfg.loss.name]
    if model.head not in heads:
        raise UserError(
            f"loss={cfg.loss.name} cannot train a {model.head} head (model.head={model.head}); "
            f"{cfg.loss.name} needs model.head={' or '.join(heads)}.")
    if model.head == "leaky_relu" and act.name != "leaky_relu" and "negative_slope" not in act:
        raise UserError("model.head=leaky_relu needs act.negative_slope; use act=leaky_relu.")


def _check_run(cfg: DictConfig) -> None:
    _whole("epochs", cfg.epochs, 1)
    _whole("log_every", cfg.log_every, 1)
    _one_of("engine", cfg.engine, ENGINES)
    for key in ("progress", "resume"):
        if cfg[key] not in ("auto", True, False) or isinstance(cfg[key], (int, float)) and not isinstance(cfg[key], bool):
            raise UserError(f"{key}={cfg[key]!r} is not allowed; choose auto, true or false.")
    if cfg.threads != "auto":
        cores = os.cpu_count() or 1
        if not _is_whole(cfg.threads) or not 1 <= cfg.threads <= cores:
            raise UserError(f"threads={cfg.threads!r} is not allowed; choose auto or a whole number from 1 to {cores} "
                            f"(this machine's CPU cores).")
    member_seeds(cfg)
    _text("checkpoint_dir", cfg.checkpoint_dir, "a directory path")
    resolve_engine(cfg.engine, resolve_device(cfg.device))


def _check_data(cfg: DictConfig) -> None:
    data, norm = cfg.data, cfg.norm
    _text("data.root", data.root, "a directory path")
    _one_of("data.val", data.val, VAL_SPLITS)
    sources = list(data.sources) if not isinstance(data.sources, str) else [data.sources]
    if not sources or any(s not in SOURCE_NAMES for s in sources):
        raise UserError(f"data.sources={sources!r} is not allowed; give a non-empty list of: {', '.join(SOURCE_NAMES)}.")
    if data.limit_train is not None:
        _whole("data.limit_train", data.limit_train, 1)
    n_train = train_size(data.name, val=data.val, limit_train=data.limit_train)
    batch = _whole("batch_size", cfg.batch_size, 1)
    if batch > n_train:
        raise UserError(f"batch_size={batch} is larger than the training set ({n_train} images); allowed: 1..{n_train}.")
    if batch == 1 and norm.kind == "batch":  # (a last batch of one sample is skipped by the loop itself)
        raise UserError(f"batch_size=1 cannot train with norm={norm.kind}: BatchNorm needs at least 2 samples per "
                        "batch; use batch_size >= 2, or norm=ln or none.")
    if cfg.max_steps is not None:
        _check_max_steps(cfg, n_train, batch)


def _check_max_steps(cfg: DictConfig, n_train: int, batch: int) -> None:
    steps = _whole("max_steps", cfg.max_steps, 1, what=" (optimizer steps), or null")
    per_epoch = epoch_steps(n_train, batch, bool(cfg.drop_last), cfg.norm.kind == "batch")
    if cfg.epochs * per_epoch < steps:  # the run would end short of the steps it was asked for
        need = math.ceil(steps / per_epoch)
        raise UserError(f"max_steps={steps} needs epochs >= {need} at batch_size={batch} ({per_epoch} steps per epoch "
                        f"over {n_train} images), but epochs={cfg.epochs} gives {cfg.epochs * per_epoch}; "
                        f"allowed: epochs >= {need}, or max_steps <= {cfg.epochs * per_epoch}.")


def _check_objective_and_probe(cfg: DictConfig) -> None:
    _one_of("objective.metric", cfg.objective.metric, METRICS)
    _one_of("objective.direction", cfg.objective.direction, DIRECTIONS)
    probe, n_val, hidden = cfg.probe, val_size(cfg.data.name, cfg.data.val), list(cfg.model.hidden)
    _whole("probe.every_steps", probe.every_steps or 0, 0, what=" (optimizer steps between looks; 0: none), or null")
    on = probe.enabled and probe.every_steps  # only a look that runs must fit the model and its BatchNorm
    fewest = 2 if on and cfg.norm.kind == "batch" else 1  # the looks run BatchNorm on the probe's own batch
    _whole("probe.samples", probe.samples, fewest, n_val, f" (validation images the probe looks at; data.val="
           f"{cfg.data.val} has {n_val}{'; BatchNorm in its looks needs 2, or probe.every_steps=null' if fewest > 1 else ''})")
    _whole("probe.units", probe.units, 1, min(hidden) if on else None,
           f" (units per hidden layer; the narrowest of model.hidden={hidden}), or probe.every_steps=null" if on else "")


def _check_tracking(cfg: DictConfig, check_paths: bool, launch_dir: Path) -> None:
    tracking = cfg.tracking
    _text("tracking.experiment", tracking.experiment, "a non-empty MLflow experiment name")
    _number("tracking.retry_seconds", tracking.retry_seconds, low=0, what=" (how long a job retries a silent store)")
    beat = _number("tracking.heartbeat_seconds", tracking.heartbeat_seconds, low=0, low_open=True)
    _number("tracking.stale_after_seconds", tracking.stale_after_seconds, low=2 * beat,
            what=f" (at least two heartbeats, 2 x tracking.heartbeat_seconds={beat:g}: one late beat is no death)")
    if tracking.uri is not None:
        check_tracking_uri(tracking.uri, launch_dir, check_paths=check_paths)
