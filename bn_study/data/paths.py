"""Where the data root is, and whether this process may write there."""

from __future__ import annotations

import os
from pathlib import Path

from bn_study.errors import UserError


def normalize_root(root: str | os.PathLike[str]) -> Path:
    # One spelling per directory, so the in-process cache and the lock file agree across callers.
    return Path(root).expanduser().resolve()


def check_root_writable(root: str | os.PathLike[str]) -> None:
    """Raise UserError unless ``root`` (or, when it does not exist yet, its nearest existing ancestor) is writable."""
    path = normalize_root(root)
    existing = path
    # os.path.exists is False both for a missing entry and for a path through a regular file; walking up finds
    # the directory that creating ``root`` would actually write into.
    while not os.path.exists(existing) and existing.parent != existing:
        existing = existing.parent
    if not existing.is_dir():
        raise UserError(f"data.root '{path}' is not writable: '{existing}' is not a directory")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UserError(
            f"data.root '{path}' is not writable: this user may not create files in '{existing}'; "
            "choose another data.root or put the dataset files there"
        )
