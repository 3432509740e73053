"""Every value a user can get wrong, checked before anything runs or is written.

Each check raises ``UserError`` with one sentence: the bad value, and what is allowed.
Hydra already rejects unknown group choices (listing the valid files); these catch what a
well-formed override can still get wrong: ``norm=bn4 model=book``, ``loss=bce`` with a softmax head…
"""

from __future__ import annotations

import re
from typing import Any

import torch
from omegaconf import DictConfig

from bn_study.data import check_root_writable
from bn_study.data.catalog import get_dataset
from bn_study.data.splits import HOLDOUT_SIZE
from bn_study.errors import UserError
from bn_study.train.losses import LOSSES
from bn_study.train.model import ACTIVATIONS, HEADS, NORM_KINDS, POSITIONS, check_init
from bn_study.train.optim import check_optimizer

METRICS = ("val_acc", "val_loss", "train_acc", "train_loss")
DIRECTIONS = ("minimize", "maximize")
ENGINES = ("auto", "eager", "graph", "compile")
VAL_SPLITS = ("test", "holdout")
HEAD_FOR_LOSS = {"ce": ("softmax",), "mse": ("sigmoid", "leaky_relu"), "bce": ("sigmoid",)}
_DEVICE = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")


def _one_of(key: str, value: Any, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise UserError(f"{key}={value!r} is not allowed; choose one of: {', '.join(allowed)}.")


def _int_at_least(key: str, value: Any, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise UserError(f"{key}={value!r} is not allowed; it must be a whole number >= {low}.")
    return value


def _positive_number(key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise UserError(f"{key}={value!r} is not allowed; it must be a number > 0.")
    return float(value)


def resolve_device(name: str) -> torch.device:
    """``auto`` = the first CUDA device when there is one, else the CPU."""
    if not isinstance(name, str) or not _DEVICE.match(name):
        raise UserError(f"device={name!r} is not allowed; choose auto, cpu, cuda or cuda:N.")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise UserError(f"device={name!r} is not available: this machine has no CUDA GPU; use device=cpu or auto.")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise UserError(f"device={name!r} does not exist; this machine has cuda:0..cuda:{torch.cuda.device_count() - 1}.")
    return device


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
        return (_int_at_least("seed", cfg.seed, 0),)
    seeds = list(cfg.seeds) if not isinstance(cfg.seeds, int) else None
    if not seeds or any(isinstance(s, bool) or not isinstance(s, int) or s < 0 for s in seeds):
        raise UserError(f"seeds={cfg.seeds!r} is not allowed; give a non-empty list of whole numbers >= 0, e.g. seeds=[0,1,2,3,4].")
    if len(set(seeds)) != len(seeds):
        raise UserError(f"seeds={seeds} repeats a seed; each seed must appear once.")
    return tuple(seeds)


def validate_config(cfg: DictConfig, *, check_paths: bool = True) -> None:
    """Raise ``UserError`` for the first bad value in a composed config."""
    model, act, norm, opt, data = cfg.model, cfg.act, cfg.norm, cfg.optimizer, cfg.data
    _one_of("act.name", act.name, ACTIVATIONS)
    _one_of("model.head", model.head, HEADS)
    check_init(model.init)
    if not model.hidden or any(isinstance(h, bool) or not isinstance(h, int) or h < 1 for h in model.hidden):
        raise UserError(f"model.hidden={list(model.hidden)} is not allowed; give a non-empty list of layer widths >= 1.")
    _one_of("norm.kind", norm.kind, NORM_KINDS)
    _one_of("norm.position", norm.position, POSITIONS)
    depth = len(model.hidden)
    if norm.kind != "none":
        if norm.layers != "all":
            layers = _int_at_least("norm.layers", norm.layers, 1)
            if layers > depth:
                short = "bn" if norm.kind == "batch" else "ln"
                raise UserError(
                    f"norm={short}{layers} puts a norm layer after {layers} hidden layers, but model={model.name} "
                    f"has {depth} ({list(model.hidden)}); allowed: {short}1..{short}{depth}, ln or none.")
        _positive_number("norm.eps", norm.eps)
        if norm.kind == "batch" and not 0 <= float(norm.momentum) <= 1:
            raise UserError(f"norm.momentum={norm.momentum!r} is not allowed; PyTorch's BN momentum is in [0, 1] (Keras 0.99 = 0.01).")
    _one_of("loss.name", cfg.loss.name, LOSSES)
    heads = HEAD_FOR_LOSS[cfg.loss.name]
    if model.head not in heads:
        raise UserError(
            f"loss={cfg.loss.name} cannot train a {model.head} head (model.head={model.head}); "
            f"{cfg.loss.name} needs model.head={' or '.join(heads)}.")
    if model.head == "leaky_relu" and act.name != "leaky_relu" and "negative_slope" not in act:
        raise UserError("model.head=leaky_relu needs act.negative_slope; use act=leaky_relu.")
    check_optimizer(opt)
    _int_at_least("epochs", cfg.epochs, 1)
    _int_at_least("log_every", cfg.log_every, 1)
    _one_of("engine", cfg.engine, ENGINES)
    _one_of("objective.metric", cfg.objective.metric, METRICS)
    _one_of("objective.direction", cfg.objective.direction, DIRECTIONS)
    for key in ("progress", "resume"):
        if cfg[key] not in ("auto", True, False):
            raise UserError(f"{key}={cfg[key]!r} is not allowed; choose auto, true or false.")
    if cfg.threads != "auto":
        _int_at_least("threads", cfg.threads, 1)
    member_seeds(cfg)
    resolve_device(cfg.device)

    _one_of("data.val", data.val, VAL_SPLITS)
    if data.limit_train is not None:
        _int_at_least("data.limit_train", data.limit_train, 1)
    n_train = train_size(data.name, val=data.val, limit_train=data.limit_train)
    batch = _int_at_least("batch_size", cfg.batch_size, 1)
    if batch > n_train:
        raise UserError(f"batch_size={batch} is larger than the training set ({n_train} images); allowed: 1..{n_train}.")
    if batch == 1 and norm.kind == "batch":
        raise UserError(f"batch_size=1 cannot train with norm={norm.kind}: BatchNorm needs at least 2 samples per "
                        "batch; use batch_size >= 2, or norm=ln or none.")
    if check_paths:
        check_root_writable(data.root)
