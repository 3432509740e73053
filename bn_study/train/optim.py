"""The optimizer from config: ``_target_`` names any ``torch.optim`` class, the other keys are its keyword
arguments. Keras and the book differ only in the numbers the config files set; a new optimizer
(RMSprop, AdamW, …) is one YAML file under ``conf/optimizer/``."""

from __future__ import annotations

import inspect
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import torch
from torch import nn

from bn_study.errors import UserError
from bn_study.util.targets import keyword_args, locate, parameters

# How an optimizer computes, not what: chosen by the engine (never in a config), and kept as built when a
# checkpoint's state is loaded into it.
IMPLEMENTATION_FLAGS = ("capturable", "foreach", "fused", "differentiable")
# PyTorch has a fused CPU kernel for these (and refuses fused=True for others).
FUSED_ON_CPU = (torch.optim.SGD, torch.optim.Adam, torch.optim.AdamW)
NON_NEGATIVE = ("momentum", "weight_decay", "dampening", "alpha", "lr_decay", "initial_accumulator_value")


def optimizer_class(cfg: Mapping[str, Any]) -> type[torch.optim.Optimizer]:
    cls = locate(cfg.get("_target_"))
    if not (inspect.isclass(cls) and issubclass(cls, torch.optim.Optimizer)):
        raise UserError(f"optimizer._target_={cfg.get('_target_')!r} is not a torch optimizer class; name one, "
                        "e.g. torch.optim.SGD, torch.optim.Adam, torch.optim.AdamW or torch.optim.RMSprop.")
    return cls


def build_optimizer(params: Iterable[nn.Parameter], cfg: Mapping[str, Any], *,
                    capturable: bool = False, fused: bool | None = None) -> torch.optim.Optimizer:
    """``capturable`` keeps a step counter on the device so the step can live in a CUDA graph (for the
    optimizers that have one); ``fused`` picks PyTorch's one-kernel update (None: its default)."""
    cls = optimizer_class(cfg)
    accepted = parameters(cls, 1)
    flags = {key: value for key, value in (("capturable", capturable), ("fused", fused))
             if key in accepted and value not in (None, False)}
    optimizer = cls(params, **keyword_args(cfg), **flags)
    keep_implementation(optimizer)
    return optimizer


def fused_helps(cfg: Mapping[str, Any]) -> bool:
    """Whether PyTorch's fused CPU kernel beats its default for this optimizer (docs/benchmarks.md): yes for
    Adam(W) and SGD with momentum; plain SGD is one ``add_`` per parameter either way, so it keeps the
    default (and ``engine=auto`` stays bit for bit ``eager`` there)."""
    cls = optimizer_class(cfg)
    if cls is torch.optim.SGD:
        return float(cfg.get("momentum", 0.0)) > 0
    return cls in FUSED_ON_CPU


def check_optimizer(cfg: Mapping[str, Any]) -> None:
    """Raise ``UserError`` for an optimizer config that cannot build: the schema of an optimizer is its own
    signature — every key one of its keyword arguments, of the type of that argument's default."""
    cls = optimizer_class(cfg)
    name = f"{cls.__module__}.{cls.__qualname__}"
    accepted = {k: p for k, p in parameters(cls, 1).items() if k not in IMPLEMENTATION_FLAGS}
    for key, value in cfg.items():
        key = str(key)
        if key.startswith("_"):
            continue
        if key in IMPLEMENTATION_FLAGS:
            raise UserError(f"optimizer.{key} is chosen by the engine, not the config; drop it (engine=eager keeps "
                            "PyTorch's default implementation).")
        if key not in accepted:
            raise UserError(f"optimizer.{key} is not an argument of {name}; its arguments are: "
                            f"{', '.join(accepted)}.")
        _check_value(key, value, accepted[key].default, name)
    if "lr" in cfg and not cfg["lr"] > 0:  # (finite: checked above)
        raise UserError(f"optimizer.lr={cfg['lr']!r} is not allowed; it must be a finite number > 0.")
    for key in NON_NEGATIVE:
        if key in cfg and cfg[key] < 0:
            raise UserError(f"optimizer.{key}={cfg[key]!r} is not allowed; it must be a number >= 0.")
    for i, beta in enumerate(cfg.get("betas") or ()):
        if not 0 <= beta < 1:
            raise UserError(f"optimizer.betas={list(cfg['betas'])} is not allowed; each beta must be in [0, 1).")
    try:  # PyTorch's own checks (e.g. Nesterov needs momentum) on a throwaway parameter
        cls([nn.Parameter(torch.zeros(1))], **keyword_args(cfg))
    except (ValueError, TypeError) as err:
        raise UserError(f"optimizer={name} refuses these settings: {err}.") from None


def _check_value(key: str, value: Any, default: Any, name: str) -> None:
    """``value`` must be what ``default`` is: a bool, a finite number, or a tuple of as many finite numbers."""
    def number(v: Any) -> bool:
        return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)

    if isinstance(default, bool):
        ok, kind = isinstance(value, bool), "true or false"
    elif isinstance(default, (int, float)) or key == "lr":
        ok, kind = number(value), "a finite number"
    elif isinstance(default, tuple):
        ok = isinstance(value, Sequence) and not isinstance(value, str) and len(value) == len(default) and all(number(v) for v in value)
        kind = f"a list of {len(default)} finite numbers"
    else:  # an argument without a telling default (None): PyTorch checks it when the optimizer is built
        return
    if not ok:
        raise UserError(f"optimizer.{key}={value!r} is not allowed; {name}'s {key} must be {kind}.")


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
