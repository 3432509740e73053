"""Every job of a sweep composed up front, exactly as its launcher will compose it, so that all of them
can be checked before the first one runs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from omegaconf import DictConfig


def compose_jobs(sweeper: Any, batch: Sequence[Sequence[str]]) -> list[DictConfig]:
    """Each job's config, composed by the sweeper's own config loader."""
    loader = sweeper.hydra_context.config_loader
    return [loader.load_sweep_config(master_config=sweeper.config, sweep_overrides=list(o)) for o in batch]


def job_labels(batch: Sequence[Sequence[str]]) -> list[str]:
    return [f"job #{i} ({' '.join(o)})" for i, o in enumerate(batch)]
