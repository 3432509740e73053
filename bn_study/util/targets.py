"""``_target_``: a dotted path in a config naming what to build — Hydra's convention, read without Hydra
so that the pure-torch training code can use it."""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Mapping, Sequence
from typing import Any


def locate(path: object) -> Any | None:
    """The object a dotted path names (``torch.optim.SGD``), or None when there is none."""
    if not isinstance(path, str) or "." not in path:
        return None
    module, _, name = path.rpartition(".")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError, ValueError):
        return None


def keyword_args(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """A target's keyword arguments: every key but the ``_``-prefixed ones, lists as tuples (what torch's
    signatures take for ``betas`` and the like)."""
    return {str(k): tuple(v) if isinstance(v, Sequence) and not isinstance(v, str) else v
            for k, v in cfg.items() if not str(k).startswith("_")}


def parameters(target: Callable[..., Any], skip: int) -> dict[str, inspect.Parameter]:
    """The keyword parameters of ``target`` after its first ``skip`` positional ones (params, tensor)."""
    return dict(list(inspect.signature(target).parameters.items())[skip:])
