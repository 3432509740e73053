"""What an Optuna sweep will run: the search space, the fixed overrides, the arms, each job's overrides.

Every job's overrides are layered, a later layer winning for the same key: the fixed overrides (the
command line's and ``hydra.sweeper.params``' plain values), the arm's, the trial's sampled params, and
``trial_overrides`` (or, for the rerun of the best params, ``final.overrides``); then the environment
that tells the job its trial (``bn_study.trial``).
"""

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from optuna.distributions import BaseDistribution

from bn_study.errors import UserError
from bn_study.sweep.trial import STAGE_ENV, STUDY_ENV, TRIAL_ENV
from bn_study.sweep import space as optuna_space
from bn_study.util.overrides import bare_key, override_key

log = logging.getLogger(__name__)


class SearchPlan:
    """What the sweep will do: the search space, the fixed overrides, the arms, and each job's overrides."""

    def __init__(self, space: dict[str, BaseDistribution], fixed: list[str], arms: list[list[str]],
                 trial_overrides: list[str], final_overrides: list[str] | None,
                 fixed_values: dict[str, str] | None = None) -> None:
        self.space = space
        self.fixed = fixed
        # the fixed overrides' keys (as written) and values, deletions apart: what each trial records in its
        # user attributes, as Hydra's plugin did, for a custom_search_space function to look at
        self.fixed_values = fixed_values or {}
        self.arms = arms
        self.trial_overrides = trial_overrides
        self.final_overrides = final_overrides

    @classmethod
    def build(cls, arguments: Sequence[str], params: Mapping[str, Any], arms: Mapping[str, str] | None,
              trial_overrides: list[str], final_overrides: list[str] | None,
              last_override_wins: bool = False) -> "SearchPlan":
        """``params`` and ``arms`` from the sweeper's config, ``arguments`` from the command line (which wins
        among overrides of one kind; a fixed value beats a search unless ``last_override_wins``)."""
        # a null entry drops a param (an experiment narrowing the search space it builds on)
        params_conf = [f"{k}={v}" for k, v in params.items() if v is not None]
        arms_conf = [f"{k}={v}" for k, v in (arms or {}).items()]
        rest, arm_list = optuna_space.take_arms([*params_conf, *arms_conf, *arguments], list(arms or {}))
        space, fixed_values = optuna_space.split_overrides(rest, last_wins=last_override_wins)
        fixed = [text for _, text in fixed_values.values()]
        forced = {override_key(o): o for o in trial_overrides}
        for key in space:
            bare = bare_key(key)
            if bare in forced:
                raise UserError(f"{bare} is searched, but hydra.sweeper.trial_overrides fixes it to "
                                f"{forced[bare]!r}; keep one.")
        for item in fixed:
            key = override_key(item)
            if key in forced and forced[key] != item:
                log.warning("%s is replaced by %s in every search trial (hydra.sweeper.trial_overrides)",
                            item, forced[key])
        # the value as the user wrote it: Hydra's own string escapes a URL's colons, which would hide its
        # password from mask_userinfo
        values = {name: text.partition("=")[2] for name, (value, text) in fixed_values.items()
                  if value is not None and not name.startswith("~")}
        return cls(space, fixed, arm_list, list(trial_overrides), final_overrides, values)

    @staticmethod
    def arm_label(arm: Sequence[str]) -> str:
        return " ".join(arm)

    def study_name(self, base: str | None, arm: Sequence[str]) -> str | None:
        if not arm or base is None:
            return base
        return f"{base} {self.arm_label(arm)}"

    def study_names(self, base: str | None) -> list[str]:
        return [self.study_name(base, arm) or "(unnamed)" for arm in self.arms]

    def trial_job(self, arm: Sequence[str], params: dict[str, Any], study_id: int, number: int) -> list[str]:
        searched = [optuna_space.as_override(k, v) for k, v in params.items()]
        merged = optuna_space.merge_overrides(self.fixed, arm, searched, self.trial_overrides)
        return [*merged, *_trial_env(study_id, number)]

    def final_job(self, arm: Sequence[str], params: dict[str, Any], study_id: int, number: int) -> list[str]:
        assert self.final_overrides is not None
        best = [optuna_space.as_override(k, v) for k, v in params.items()]
        merged = optuna_space.merge_overrides(self.fixed, arm, best, self.final_overrides)
        return [*merged, *_trial_env(study_id, number), f"++hydra.job.env_set.{STAGE_ENV}=final"]

    def probes(self) -> list[tuple[list[str], str]]:
        """Jobs that touch every choice and bound of the space, per arm, and each arm's final job."""
        probes = []
        for arm in self.arms:
            points = optuna_space.probe_points(self.space)
            for point in points:
                searched = [optuna_space.as_override(k, v) for k, v in point.items()]
                job = optuna_space.merge_overrides(self.fixed, arm, searched, self.trial_overrides)
                probes.append((job, f"search space ({' '.join([*arm, *searched]) or 'no params'})"))
            if self.final_overrides is not None:
                best = [optuna_space.as_override(k, v) for k, v in points[0].items()]
                job = optuna_space.merge_overrides(self.fixed, arm, best, self.final_overrides)
                probes.append((job, f"final stage ({' '.join(self.final_overrides)})"))
        return probes


def _trial_env(study_id: int, number: int) -> list[str]:
    """How a job learns its trial: environment variables, outside the task config (bn_study.trial)."""
    return [f"++hydra.job.env_set.{STUDY_ENV}={study_id}", f"++hydra.job.env_set.{TRIAL_ENV}={number}"]
