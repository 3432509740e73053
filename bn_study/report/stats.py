"""Numbers behind every table cell and verdict: t-intervals over seeds, Welch intervals for differences,
and the one rule that turns an interval into a verdict.

Why these choices:

- **t-interval over seeds** (not a bootstrap): with 5 seeds a percentile bootstrap can only produce
  intervals that are too narrow (it never reaches beyond the observed min/max); Student's t with
  n − 1 degrees of freedom is the textbook small-sample interval for a mean.
- **Welch's unequal-variance interval for a difference of two conditions, not a paired one**: runs
  with the same seed share their initial weights and batch order, but after a few hundred steps the
  trajectories of different conditions have nothing left in common that we could rely on, and
  diverged runs leave the arms with unequal n. Welch needs neither matched seeds nor equal
  variances; if outcomes were positively correlated by seed it is merely conservative.
- **One verdict rule for every claim**: a claim says the effect (A's improvement over B) lies in a
  region R. *supported* when the whole 95 % CI lies inside R, *not supported* when the CI does not
  touch R at all, *inconclusive* otherwise. For equivalence this is TOST-like (we use the 95 % CI,
  stricter than the usual 90 %).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from scipy import stats as sps

LEVEL = 0.95  # every interval in the report is a 95 % interval

SUPPORTED = "supported"
NOT_SUPPORTED = "not supported"
INCONCLUSIVE = "inconclusive"
VERDICTS = (SUPPORTED, NOT_SUPPORTED, INCONCLUSIVE)


@dataclass(frozen=True)
class Summary:
    """Mean of n values with its 95 % t-interval half-width (``None`` when n < 2: no interval exists)."""

    n: int
    mean: float
    half: float | None
    sd: float | None

    @property
    def low(self) -> float | None:
        return None if self.half is None else self.mean - self.half

    @property
    def high(self) -> float | None:
        return None if self.half is None else self.mean + self.half


def _t(df: float, level: float = LEVEL) -> float:
    return float(sps.t.ppf(0.5 + level / 2, df))


def summarize(values: Sequence[float], level: float = LEVEL) -> Summary | None:
    """Mean ± t-interval; ``None`` for no values."""
    xs = [float(v) for v in values]
    n = len(xs)
    if n == 0:
        return None
    mean = math.fsum(xs) / n
    if n < 2:
        return Summary(n, mean, None, None)
    sd = math.sqrt(math.fsum((x - mean) ** 2 for x in xs) / (n - 1))
    return Summary(n, mean, _t(n - 1, level) * sd / math.sqrt(n), sd)


def prediction_half_width(s: Summary, level: float = LEVEL) -> float | None:
    """Half-width of the 95 % prediction interval for ONE more run: a single published run is
    compared with this, not with the (much narrower) interval of our mean."""
    if s.sd is None:
        return None
    return _t(s.n - 1, level) * s.sd * math.sqrt(1 + 1 / s.n)


@dataclass(frozen=True)
class Difference:
    """mean(a) − mean(b) with its Welch 95 % interval."""

    estimate: float
    low: float
    high: float
    df: float


def welch(a: Sequence[float], b: Sequence[float], level: float = LEVEL) -> Difference | None:
    """Welch's interval for mean(a) − mean(b); ``None`` unless both arms have at least 2 values."""
    sa, sb = summarize(a), summarize(b)
    if sa is None or sb is None or sa.sd is None or sb.sd is None:
        return None
    va, vb = sa.sd ** 2 / sa.n, sb.sd ** 2 / sb.n
    d = sa.mean - sb.mean
    se = math.sqrt(va + vb)
    if se == 0.0:  # every run of both arms identical: the difference is known exactly
        return Difference(d, d, d, math.inf)
    df = (va + vb) ** 2 / (va ** 2 / (sa.n - 1) + vb ** 2 / (sb.n - 1))
    h = _t(df, level) * se
    return Difference(d, d - h, d + h, df)


@dataclass(frozen=True)
class Region:
    """Where a claim says the effect lies: from ``low`` to ``high``; an open end excludes its bound."""

    low: float = -math.inf
    high: float = math.inf
    low_open: bool = True
    high_open: bool = True

    def contains_interval(self, lo: float, hi: float) -> bool:
        above = lo > self.low if self.low_open else lo >= self.low
        below = hi < self.high if self.high_open else hi <= self.high
        return above and below

    def misses_interval(self, lo: float, hi: float) -> bool:
        left = hi <= self.low if self.low_open else hi < self.low
        right = lo >= self.high if self.high_open else lo > self.high
        return left or right

    def describe(self, unit: str = "") -> str:
        """Reads like ``> 0``, ``in (0, 5 pp]``, ``≤ 0.5 pp``, ``in [−1, 1] pp``."""
        def num(x: float) -> str:
            return f"{x:g}{unit}"

        if math.isinf(self.low) and math.isinf(self.high):
            return "any value"
        if math.isinf(self.high):
            return f"{'>' if self.low_open else '≥'} {num(self.low)}"
        if math.isinf(self.low):
            return f"{'<' if self.high_open else '≤'} {num(self.high)}"
        return f"in {'(' if self.low_open else '['}{self.low:g}, {self.high:g}{')' if self.high_open else ']'}{unit}"


def verdict(lo: float, hi: float, region: Region) -> str:
    """The rule: CI inside the region → supported; CI disjoint from it → not supported; else inconclusive."""
    if region.contains_interval(lo, hi):
        return SUPPORTED
    if region.misses_interval(lo, hi):
        return NOT_SUPPORTED
    return INCONCLUSIVE


def combine(verdicts: Sequence[str]) -> str:
    """A claim made of several comparisons ("all of"): holds only if every part holds, fails if any fails."""
    if not verdicts:
        return INCONCLUSIVE
    if any(v == NOT_SUPPORTED for v in verdicts):
        return NOT_SUPPORTED
    if all(v == SUPPORTED for v in verdicts):
        return SUPPORTED
    return INCONCLUSIVE
