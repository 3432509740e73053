"""Words for counts, the same in every line a person reads."""

from __future__ import annotations


def plural(n: int, word: str, words: str | None = None) -> str:
    """``1 job``, ``2 jobs``, ``0 jobs``; ``words`` for an irregular plural."""
    return f"{n} {word if n == 1 else words or word + 's'}"
