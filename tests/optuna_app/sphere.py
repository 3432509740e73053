"""A tiny Hydra app for the Optuna sweeper's tests: Hydra's Optuna-plugin example, plus knobs to crash (always,
or from a trial number on), diverge, or report a learning curve to the trial (as bn_study's epochs do)."""

from __future__ import annotations

import math
import os

import hydra
from omegaconf import DictConfig


def sphere(cfg: DictConfig) -> float:
    from bn_study.sweep.trial import TRIAL_ENV

    crash_from = cfg.get("error_from_trial")
    if cfg.get("error", False) or (crash_from is not None and int(os.environ.get(TRIAL_ENV, -1)) >= crash_from):
        raise RuntimeError("cfg.error is True")
    value = float(cfg.x) ** 2 + float(cfg.y) ** 2
    nan_above = cfg.get("nan_above")
    if nan_above is not None and float(cfg.x) > nan_above:
        return math.nan
    if cfg.get("curve", False):  # the value falls over 5 "epochs" towards x² + y²
        from bn_study.sweep.trial import current_reporter

        reporter = current_reporter()
        for step in range(1, 6):
            if reporter is not None:
                reporter.report(step, value * (1 + 1 / step))
    return value


@hydra.main(version_base="1.3", config_path="conf", config_name="sphere")
def main(cfg: DictConfig) -> float:
    return sphere(cfg)


if __name__ == "__main__":
    main()
