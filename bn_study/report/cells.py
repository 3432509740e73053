"""How numbers and text are written in a report's tables: fixed formats, so the same data gives the same
bytes."""

from __future__ import annotations

import datetime as dt

from bn_study.report.stats import Summary


def cell(text: str) -> str:
    """Markdown table cells cannot hold a bare pipe or a newline."""
    return text.replace("|", "\\|").replace("\n", " ")


def number(metric: str, x: float) -> str:
    if metric.endswith("_acc"):
        return f"{x:.2f}"
    if metric.startswith("epochs") or metric == "epochs":
        return f"{x:.1f}"
    if metric == "decades":
        return f"{x:.2f}"
    if metric == "steps":  # optimizer steps: whole numbers, thousands apart
        return f"{x:.0f}"
    return f"{x:.4f}"


def mean_ci(metric: str, s: Summary | None) -> str:
    if s is None:
        return "—"
    if s.half is None:
        return f"{number(metric, s.mean)} (one run, no CI)"
    return f"{number(metric, s.mean)} ± {number(metric, s.half)}"


def signed(metric: str, x: float) -> str:
    text = number(metric, x)
    return text if text.startswith("-") else f"+{text}"


def verdict_text(v: str) -> str:
    return f"**{v}**"


def duration(seconds: float) -> str:
    """``3725`` → ``1 h 2 min 5 s``."""
    h, rest = divmod(int(round(seconds)), 3600)
    m, s = divmod(rest, 60)
    return " ".join(part for part in (f"{h} h" if h else "", f"{m} min" if h or m else "", f"{s} s") if part)


def utc(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
