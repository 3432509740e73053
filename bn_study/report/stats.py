"""Numbers behind every table cell and verdict: t-intervals over seeds, Welch or paired intervals for
differences, the region rule that turns an interval into a verdict, and Holm's step-down correction
across a report's claims.

Why these choices:

- **t-interval over seeds** (not a bootstrap): with 5 seeds a percentile bootstrap can only produce
  intervals that are too narrow (it never reaches beyond the observed min/max); Student's t with
  n − 1 degrees of freedom is the textbook small-sample interval for a mean.
- **Two analyses of a difference, chosen per claim**: Welch's unequal-variance interval (unpaired: it
  needs neither matched seeds nor equal variances) or the paired t-interval over the seeds both arms
  ran (same seed = same initial weights where shapes match, same shuffle order). Pairing is narrower
  when seed effects are shared and wider (fewer df) when they are not, so it is a choice the report
  states, never a silent switch.
- **One verdict rule for every claim**: a claim says the effect (A's improvement over B) lies in a
  region R. *supported* when the whole CI lies inside R; when the CI lies entirely outside R, the
  claim is *contradicted* (the effect is on the other side of a bound the claim set) or *exceeded*
  (beyond the bound in the claim's own direction: "A matches B" when A is clearly better);
  *inconclusive* otherwise. For equivalence this is TOST-like (at 95 %, stricter than the usual 90 %).
- **Holm across the claims of a report**: a verdict is a decision at level α; a report makes several,
  so each claim also gets Holm's step-down verdict, which keeps the chance of any wrong decision in
  the report at α. Holm needs no independence between claims (several share a condition).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from scipy import stats as sps

LEVEL = 0.95  # every interval in the report is a 95 % interval unless a correction says otherwise
ALPHA = 1 - LEVEL

SUPPORTED = "supported"
CONTRADICTED = "contradicted"
EXCEEDED = "exceeded"
INCONCLUSIVE = "inconclusive"
VERDICTS = (SUPPORTED, CONTRADICTED, EXCEEDED, INCONCLUSIVE)
DECIDED = (SUPPORTED, CONTRADICTED, EXCEEDED)

WELCH = "welch"
PAIRED = "paired"
ANALYSES = (WELCH, PAIRED)


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
    """An effect estimate with its 95 % interval, its standard error and degrees of freedom (so the interval
    can be redrawn at any level), the analysis that made it and how many runs (or seed pairs) it rests on."""

    estimate: float
    low: float
    high: float
    df: float
    se: float = 0.0
    analysis: str = WELCH
    n: int = 0
    # how far below and above the t-interval the effect may still lie because the values compared are known
    # only to a grain (times to a threshold, read at epoch ends); the interval then is open at both ends
    slack: tuple[float, float] = (0.0, 0.0)

    @property
    def open_ends(self) -> bool:
        return any(self.slack)

    def interval(self, level: float = LEVEL) -> tuple[float, float]:
        h = 0.0 if self.se == 0.0 else _t(self.df, level) * self.se
        return self.estimate - h - self.slack[0], self.estimate + h + self.slack[1]

    def p_beyond(self, bound: float, above: bool, at: bool = False) -> float:
        """The two-sided-equivalent p-value for "the effect lies strictly above (or below) ``bound``" (``at``:
        or exactly at it): the largest 1 − level at which the interval still lies entirely on that side of it.
        ``at`` decides only an effect known exactly (no spread over seeds), which can sit on a bound; an
        interval with open ends (``slack``) may end on the bound itself."""
        if math.isinf(bound):
            return 0.0 if (bound < 0) == above else 1.0
        end = self.estimate - self.slack[0] if above else self.estimate + self.slack[1]
        at = at or self.open_ends
        if self.se == 0.0:
            beyond = end > bound if above else end < bound
            return 0.0 if beyond or (at and end == bound) else 1.0
        z = (end - bound) / self.se
        one_sided = float(sps.t.sf(z if above else -z, self.df))
        return min(1.0, 2.0 * one_sided)


def _difference(estimate: float, variance_terms: Sequence[tuple[float, int]], analysis: str, n: int,
                level: float = LEVEL) -> Difference:
    """An estimate whose variance is a sum of s²/n terms (one per mean involved), with the Welch–Satterthwaite df."""
    se = math.sqrt(math.fsum(v for v, _ in variance_terms))
    if se == 0.0:  # every run identical: the difference is known exactly
        return Difference(estimate, estimate, estimate, math.inf, 0.0, analysis, n)
    df = se ** 4 / math.fsum(v ** 2 / (k - 1) for v, k in variance_terms if v > 0)
    h = _t(df, level) * se
    return Difference(estimate, estimate - h, estimate + h, df, se, analysis, n)


def widened(d: Difference, below: float, above: float) -> Difference:
    """``d`` with the grain of the values it compares: the effect may lie up to ``below`` under its interval
    and ``above`` over it (never a zero-width interval for values known only to a grain)."""
    if not (below or above):
        return d
    return replace(d, low=d.low - below, high=d.high + above, slack=(below, above))


def welch(a: Sequence[float], b: Sequence[float], level: float = LEVEL) -> Difference | None:
    """Welch's interval for mean(a) − mean(b); ``None`` unless both arms have at least 2 values."""
    return contrast([(1.0, a), (-1.0, b)], level)


def contrast(terms: Sequence[tuple[float, Sequence[float]]], level: float = LEVEL) -> Difference | None:
    """Σ cᵢ·mean(xᵢ) over independent groups, with the Welch–Satterthwaite interval (an interaction is
    (A − B) under X minus (A − B) under Y: four groups); ``None`` unless every group has 2 values."""
    sums = [(c, summarize(xs)) for c, xs in terms]
    if any(s is None or s.sd is None for _, s in sums):
        return None
    estimate = math.fsum(c * s.mean for c, s in sums)  # type: ignore[union-attr]
    return _difference(estimate, [(c * c * s.sd ** 2 / s.n, s.n) for c, s in sums],  # type: ignore[union-attr]
                       WELCH, sum(s.n for _, s in sums), level)  # type: ignore[union-attr]


def paired(terms: Sequence[tuple[float, Mapping[int, float]]]) -> Difference | None:
    """Σ cᵢ·xᵢ per seed, over the seeds every group has, with the one-sample t-interval of those per-seed
    contrasts (A − B: two groups; an interaction: four); ``None`` with fewer than 2 common seeds."""
    seeds = sorted(set.intersection(*(set(xs) for _, xs in terms))) if terms else []
    if len(seeds) < 2:
        return None
    d = [math.fsum(c * xs[s] for c, xs in terms) for s in seeds]
    m = summarize(d)
    assert m is not None and m.sd is not None
    return _difference(m.mean, [(m.sd ** 2 / m.n, m.n)], PAIRED, m.n)


@dataclass(frozen=True)
class Region:
    """Where a claim says the effect lies: from ``low`` to ``high``; an open end excludes its bound.
    ``above``: what an effect entirely above ``high`` means for the claim — *exceeded* when the claim's own
    direction is up ("A at most a little better", "A matches B"), *contradicted* when it is not
    ("A is not better")."""

    low: float = -math.inf
    high: float = math.inf
    low_open: bool = True
    high_open: bool = True
    above: str = EXCEEDED

    def contains_interval(self, lo: float, hi: float) -> bool:
        above = lo > self.low if self.low_open else lo >= self.low
        below = hi < self.high if self.high_open else hi <= self.high
        return above and below

    def below_interval(self, lo: float, hi: float) -> bool:
        """The interval lies entirely below the region."""
        return hi <= self.low if self.low_open else hi < self.low

    def above_interval(self, lo: float, hi: float) -> bool:
        return lo >= self.high if self.high_open else lo > self.high

    def misses_interval(self, lo: float, hi: float) -> bool:
        return self.below_interval(lo, hi) or self.above_interval(lo, hi)

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


def verdict(lo: float, hi: float, region: Region, open_ends: bool = False) -> str:
    """The rule: CI inside the region → supported; CI below it → contradicted; above it → the region's
    ``above`` (exceeded, or contradicted for "A is not better"); else inconclusive. ``open_ends``: the
    interval excludes its ends, so it may end on a bound the region excludes."""
    if open_ends:  # every bound of the region counts as closed: (lo, hi) holds none of its own ends
        region = replace(region, low_open=False, high_open=False)
        inside, below, above = (region.contains_interval(lo, hi), hi <= region.low, lo >= region.high)
    else:
        inside, below, above = (region.contains_interval(lo, hi), region.below_interval(lo, hi),
                                region.above_interval(lo, hi))
    if inside:
        return SUPPORTED
    if below:
        return CONTRADICTED
    if above:
        return region.above
    return INCONCLUSIVE


def p_values(effect: Difference, region: Region) -> dict[str, float]:
    """For each decided verdict, the smallest α at which the (1 − α) interval reaches it: support needs the
    interval past every finite bound of the region (intersection–union), a miss past one of them."""
    # a closed bound belongs to the region, an open one does not: as in ``verdict``'s interval tests
    out = {SUPPORTED: max(effect.p_beyond(region.low, above=True, at=not region.low_open),
                          effect.p_beyond(region.high, above=False, at=not region.high_open)),
           CONTRADICTED: (effect.p_beyond(region.low, above=False, at=region.low_open)
                          if not math.isinf(region.low) else 1.0),
           EXCEEDED: 1.0}
    if not math.isinf(region.high):
        out[region.above] = min(out[region.above], effect.p_beyond(region.high, above=True, at=region.high_open))
    return out


def combine(verdicts: Sequence[str]) -> str:
    """A claim made of several comparisons ("all of"): holds only if every part holds; a part that is
    contradicted contradicts the claim, one that is exceeded (and none contradicted) exceeds it."""
    if not verdicts:
        return INCONCLUSIVE
    for failed in (CONTRADICTED, EXCEEDED):
        if any(v == failed for v in verdicts):
            return failed
    if all(v == SUPPORTED for v in verdicts):
        return SUPPORTED
    return INCONCLUSIVE


def holm(p: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values, in the input's order (a tie keeps the input order)."""
    m = len(p)
    order = sorted(range(m), key=lambda i: (p[i], i))
    out = [1.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[i]))
        out[i] = running
    return out


def binomial_se(accuracy_percent: float, n: int) -> float:
    """The standard error (in pp) of one accuracy measured on n images: the test set's own sampling error,
    which every seed shares (they all read the same images), so between-seed intervals leave it out."""
    q = min(max(accuracy_percent / 100.0, 0.0), 1.0)
    return 100.0 * math.sqrt(q * (1 - q) / n)
