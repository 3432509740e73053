"""The optimizer from config. Keras and the book differ only in the numbers the config files set."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import torch
from torch import nn

OPTIMIZERS = ("sgd", "adam")


def build_optimizer(params: Iterable[nn.Parameter], cfg: Mapping[str, Any], *,
                    capturable: bool = False) -> torch.optim.Optimizer:
    """``capturable`` keeps Adam's step counter on the device so the step can live in a CUDA graph."""
    if cfg["name"] == "sgd":
        return torch.optim.SGD(
            params,
            lr=float(cfg["lr"]),
            momentum=float(cfg.get("momentum", 0.0)),
            nesterov=bool(cfg.get("nesterov", False)),
            weight_decay=float(cfg.get("weight_decay", 0.0)),
        )
    if cfg["name"] == "adam":
        betas = tuple(float(b) for b in cfg.get("betas", (0.9, 0.999)))
        return torch.optim.Adam(
            params,
            lr=float(cfg["lr"]),
            betas=betas,  # type: ignore[arg-type]
            eps=float(cfg.get("eps", 1e-8)),
            weight_decay=float(cfg.get("weight_decay", 0.0)),
            capturable=capturable,
        )
    raise ValueError(f"unknown optimizer {cfg['name']!r}")
