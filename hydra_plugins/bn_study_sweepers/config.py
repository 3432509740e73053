"""Structured configs that make ``hydra/sweeper=grid`` (the project's default) resolvable.

No ``from __future__ import annotations`` here: Hydra executes plugin modules outside sys.modules,
where dataclasses cannot resolve string annotations."""


from dataclasses import dataclass
from typing import Dict, Optional

from hydra.core.config_store import ConfigStore


@dataclass
class GridSweeperConf:
    _target_: str = "hydra_plugins.bn_study_sweepers.grid.GridSweeper"
    max_batch_size: Optional[int] = None
    params: Optional[Dict[str, str]] = None


ConfigStore.instance().store(group="hydra/sweeper", name="grid", node=GridSweeperConf, provider="bn_study")
