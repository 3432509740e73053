"""Where the shipped configs are, in a checkout and in an installed package alike."""

from __future__ import annotations

from pathlib import Path

# A checkout keeps conf/ at the top, beside the package (what a user edits there).
_CHECKOUT_CONF = Path(__file__).resolve().parents[2] / "conf"


def conf_dir() -> Path:
    """The directory holding config.yaml and the config groups."""
    return _CHECKOUT_CONF
