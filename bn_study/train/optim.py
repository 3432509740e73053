"""The optimizer from config. Keras and the book differ only in the numbers the config files set."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import torch
from torch import nn

from bn_study.errors import UserError

OPTIMIZERS = ("sgd", "adam")
# How an optimizer computes, not what: kept as built when a checkpoint's state is loaded into it.
IMPLEMENTATION_FLAGS = ("capturable", "foreach", "fused")


def build_optimizer(params: Iterable[nn.Parameter], cfg: Mapping[str, Any], *,
                    capturable: bool = False, fused: bool | None = None) -> torch.optim.Optimizer:
    """``capturable`` keeps Adam's step counter on the device so the step can live in a CUDA graph;
    ``fused`` picks PyTorch's one-kernel update (None: PyTorch's default implementation)."""
    if cfg["name"] == "sgd":
        optimizer: torch.optim.Optimizer = torch.optim.SGD(
            params,
            lr=float(cfg["lr"]),
            momentum=float(cfg.get("momentum", 0.0)),
            nesterov=bool(cfg.get("nesterov", False)),
            weight_decay=float(cfg.get("weight_decay", 0.0)),
            fused=fused,
        )
    elif cfg["name"] == "adam":
        betas = tuple(float(b) for b in cfg.get("betas", (0.9, 0.999)))
        optimizer = torch.optim.Adam(
            params,
            lr=float(cfg["lr"]),
            betas=betas,  # type: ignore[arg-type]
            eps=float(cfg.get("eps", 1e-8)),
            weight_decay=float(cfg.get("weight_decay", 0.0)),
            capturable=capturable,
            fused=fused,
        )
    else:
        raise ValueError(f"unknown optimizer {cfg['name']!r}")
    keep_implementation(optimizer)
    return optimizer


def keep_implementation(optimizer: torch.optim.Optimizer) -> None:
    """After ``load_state_dict``, restore this optimizer's implementation flags.

    PyTorch copies every param-group key from the saved state, flags included, so a checkpoint written
    by a CUDA-graph run (``capturable=True``) would otherwise make a CPU run's Adam refuse to step, and
    a CPU checkpoint would make a graph capture fail. Adam's ``step`` counter is moved to where the
    restored implementation keeps it (the parameter's device when capturable or fused, else the CPU).
    """
    flags = {key: optimizer.defaults[key] for key in IMPLEMENTATION_FLAGS if key in optimizer.defaults}

    def restore(opt: torch.optim.Optimizer) -> None:
        for group in opt.param_groups:
            group.update(flags)
            on_device = bool(group.get("capturable")) or bool(group.get("fused"))
            for p in group["params"]:
                step = opt.state.get(p, {}).get("step")
                if isinstance(step, torch.Tensor):
                    device = p.device if on_device else torch.device("cpu")
                    if step.device != device:
                        opt.state[p]["step"] = step.to(device=device, dtype=torch.float32)

    optimizer.register_load_state_dict_post_hook(restore)


def check_optimizer(cfg: Mapping[str, Any]) -> None:
    """Raise ``UserError`` for an optimizer config that cannot build (the one place these keys are checked)."""
    if cfg["name"] not in OPTIMIZERS:
        raise UserError(f"optimizer.name={cfg['name']!r} is not allowed; choose one of: {', '.join(OPTIMIZERS)}.")
    lr = cfg["lr"]
    if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not lr > 0:
        raise UserError(f"optimizer.lr={lr!r} is not allowed; it must be a number > 0.")
    if cfg["name"] == "sgd" and cfg.get("nesterov", False) and not float(cfg.get("momentum", 0)) > 0:
        raise UserError(f"optimizer.nesterov=true needs optimizer.momentum > 0 (got {cfg.get('momentum')}).")
