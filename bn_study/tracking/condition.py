"""A run's condition: the settings of its configuration that differ from the defaults, in a canonical order.

The same configuration gets the same condition whether it ran alone, as a grid job or as an Optuna trial,
and two configurations that differ in one setting never share one: ``norm=bn1 act=relu`` from one sweep and
``norm=bn1`` from another (where ``act=relu`` was on the command line for every job) are not the same
runs. A condition lists

1. the config groups (``act``, ``norm``, ``optimizer`` …) whose option differs from the primary config's
   defaults, as ``group=option``, in the defaults list's order;
2. then every other value that differs from the defaults with those options, as ``key=value``, in the
   config's own order: what an experiment, a design or the command line set (``batch_size=4``,
   ``optimizer.lr=0.003125``).

Groups that only set other keys (``experiment``, ``design``, ``variant``) are not listed themselves: their
settings are. Keys that say how a run is made or recorded rather than what is trained (seed, device,
tracking, progress bars, the probe, the report) are left out. Floats are written with 6 significant
digits: short enough to read, and two configurations that close are not told apart by a study.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from omegaconf import DictConfig, OmegaConf

from bn_study.tracking.resume import NOT_HASHED

DEFAULTS = "defaults"  # the condition of a run of the defaults
# how a run is made or recorded, not what it trains; with the bookkeeping the resume hash skips
NOT_A_SETTING = (*NOT_HASHED, "seed", "seeds", "threads", "log_every", "probe", "objective", "final_test",
                 "data.root", "data.sources", "data.verify")
# groups that only set other keys: what they set is listed instead
META_GROUPS = ("experiment", "design", "variant", "hparams_search")

Compose = Callable[[Sequence[str]], DictConfig]  # overrides → the primary config composed with them (hydra node too)


def show(value: Any, digits: int = 6) -> str:
    """A value as a condition or a run name writes it: ``0.0003125``, ``4``, ``true``, ``[0,1]``."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, float):
        return repr(value) if not math.isfinite(value) else f"{value:.{digits}g}"
    if isinstance(value, (list, tuple, dict)):
        return json.dumps(value, separators=(",", ":"), default=str)
    return str(value)


def canonical(text: str) -> str:
    """A value's text as a condition writes it (``1.0`` → ``1``, ``0.35950160623136634`` → ``0.359502``): the
    same setting reads the same whether it came from a condition, a param, the command line or a YAML file."""
    for parse in (int, float):
        try:
            return show(parse(text))
        except ValueError:
            continue
    return text


def _leaves(tree: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(tree, Mapping):
        out: dict[str, Any] = {}
        for key, value in tree.items():
            out.update(_leaves(value, f"{prefix}{key}."))
        return out
    return {prefix[:-1]: tree}


def _skipped(key: str) -> bool:
    return any(key == k or key.startswith(f"{k}.") for k in (*NOT_A_SETTING, "hydra"))


def _groups(choices: Mapping[str, Any]) -> dict[str, str]:
    return {g: str(c) for g, c in choices.items() if not g.startswith("hydra/") and g not in META_GROUPS
            and c is not None}


class Conditions:
    """Names conditions against the defaults of one primary config; ``compose`` builds a reference config."""

    def __init__(self, compose: Compose, keep: Sequence[str] = ()) -> None:
        self._compose = compose
        self._keep = list(keep)  # overrides every reference needs too (hydra.searchpath …)
        self._reference = functools.lru_cache(maxsize=64)(self._reference_uncached)

    def _reference_uncached(self, options: tuple[str, ...]) -> tuple[dict[str, str], dict[str, Any]]:
        cfg = self._compose([*self._keep, *options])
        groups = _groups(OmegaConf.to_container(cfg.hydra.runtime.choices))
        values = _leaves(OmegaConf.to_container(OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"]),
                                                resolve=True))
        return groups, values

    def of(self, cfg: DictConfig, choices: Mapping[str, Any]) -> str:
        """``cfg``: the job's config (its ``hydra`` node ignored); ``choices``: ``hydra.runtime.choices``."""
        default_groups, default_values = self._reference(())
        groups = {g: c for g, c in _groups(choices).items() if default_groups.get(g) != c}
        _, base = self._reference(tuple(sorted(f"{g}={c}" for g, c in groups.items() if g in default_groups)))
        plain = OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"])
        values = {k: v for k, v in _leaves(OmegaConf.to_container(plain, resolve=True)).items()
                  if not _skipped(k) and (k not in base or base[k] != v)}
        # canonical order: the default config's order of top-level keys, a group's option before its values
        top = {k: i for i, k in enumerate(dict.fromkeys(k.split(".")[0] for k in default_values))}
        tokens = [((top.get(g.split("/")[0], len(top)), 0, g), f"{g}={c}") for g, c in groups.items()]
        order = {k: i for i, k in enumerate(values)}
        tokens += [((top.get(k.split(".")[0], len(top)), 1, order[k]), f"{k}={show(v)}") for k, v in values.items()]
        return " ".join(t for _, t in sorted(tokens, key=lambda t: t[0])) or DEFAULTS

    def defaults_of(self, conditions: Sequence[str]) -> str:
        """The default of every setting these conditions name (``act=sigmoid norm=none``): what a condition
        that leaves a setting out, ``defaults`` among them, has."""
        groups, values = self._reference(())
        keys = dict.fromkeys(t.split("=", 1)[0] for c in conditions if c != DEFAULTS for t in c.split(" ") if "=" in t)
        return " ".join(f"{k}={groups[k]}" if k in groups else f"{k}={show(values[k])}"
                        for k in keys if k in groups or k in values)


def hydra_conditions(config_name: str, keep: Sequence[str] = ()) -> Conditions:
    """Conditions against the primary config ``config_name`` on the running Hydra app's search path."""
    from hydra.core.global_hydra import GlobalHydra
    from hydra.types import RunMode

    def compose(overrides: Sequence[str]) -> DictConfig:
        return GlobalHydra.instance().config_loader().load_configuration(
            config_name, list(overrides), RunMode.RUN, validate_sweep_overrides=False)

    return Conditions(compose, keep)


@functools.lru_cache(maxsize=4)
def _cached(config_name: str, keep: tuple[str, ...]) -> Conditions:
    return hydra_conditions(config_name, keep)


def _conditions_of(hydra_cfg: DictConfig) -> tuple[Conditions, DictConfig]:
    hc = hydra_cfg.hydra if "hydra" in hydra_cfg else hydra_cfg
    keep = tuple(o for o in hc.overrides.task if o.lstrip("+~").startswith("hydra."))
    return _cached(str(hc.job.config_name), keep), hc


def condition_of_job(cfg: DictConfig, hydra_cfg: DictConfig) -> str:
    """The condition of a job Hydra composed (``hydra_cfg``: its ``HydraConfig``, or a JobReturn's)."""
    conditions, hc = _conditions_of(hydra_cfg)
    return conditions.of(cfg, hc.runtime.choices)


def defaults_of_jobs(hydra_cfg: DictConfig, conditions: Sequence[str]) -> str:
    """``Conditions.defaults_of`` for the primary config of a job Hydra composed."""
    return _conditions_of(hydra_cfg)[0].defaults_of(conditions)
