"""Paths in the config."""

from __future__ import annotations

import os
from pathlib import Path


def resolve_path(path: str | Path, launch_dir: Path) -> Path:
    """Relative paths in the config mean relative to where the user launched, not the job's output dir."""
    path = Path(os.path.expanduser(str(path)))
    return path if path.is_absolute() else launch_dir / path
