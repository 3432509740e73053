"""Names made safe for stores and files."""

from __future__ import annotations


def slug(text: str, *, equals: str = "_", fallback: str = "experiment") -> str:
    """``text`` with every character but letters, digits and ``-_.`` replaced (``=`` by ``equals``), for
    artifact folders and MLflow keys, which allow neither ``=`` nor spaces."""
    return "".join(c if c.isalnum() or c in "-_." else equals if c == "=" else "_" for c in text) or fallback
