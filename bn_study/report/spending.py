"""Alpha spending for sequential seeds: how much of the report's error rate each look at the claims may use,
so that adding seeds until a claim is decided keeps the chance of any wrong decision at α."""

from __future__ import annotations

import math
from collections.abc import Sequence

from scipy import stats as sps

from bn_study.report.stats import ALPHA

SPENDING = ("pocock", "obrien_fleming")


def spent(fraction: float, spending: str, alpha: float = ALPHA) -> float:
    """Lan–DeMets spending functions: the error allowed up to information fraction t (seeds used / cap)."""
    t = min(max(fraction, 0.0), 1.0)
    if t == 0.0:
        return 0.0
    if spending == "pocock":
        return alpha * math.log(1 + (math.e - 1) * t)
    if spending == "obrien_fleming":
        return float(2 - 2 * sps.norm.cdf(sps.norm.ppf(1 - alpha / 2) / math.sqrt(t)))
    raise ValueError(f"unknown spending function {spending!r}; known: {', '.join(SPENDING)}")


def look_alphas(sizes: Sequence[int], cap: int, spending: str, alpha: float = ALPHA) -> list[float]:
    """The α each look may use: the increments of the spending function at n₁ < n₂ < … (seeds per arm)
    out of ``cap``. They sum to at most α, so by the union bound the chance of any wrong decision over all
    looks stays ≤ α whatever the correlation between looks (conservative: exact group-sequential bounds
    would give slightly more)."""
    out, before = [], 0.0
    for n in sizes:
        now = spent(n / cap, spending, alpha)
        out.append(max(now - before, 0.0))
        before = now
    return out
