"""Hydra override strings, read the same way everywhere."""

from __future__ import annotations


def bare_key(name: str) -> str:
    """``+experiment``, ``++experiment``, ``~experiment`` and ``experiment`` address the same key."""
    return name.lstrip("+~")


def override_key(override: str) -> str:
    """The key an override sets: ``++batch_size=4`` → ``batch_size``."""
    return bare_key(override.split("=", 1)[0])
