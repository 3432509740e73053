"""Published single-run numbers (the book's) against our runs: agreement only when an equivalence test at the
publication's rounding says so."""

from __future__ import annotations

from dataclasses import dataclass

from bn_study.report.collect import Condition
from bn_study.report.stats import Summary, prediction_half_width, summarize

AGREES = "agrees: our mean's 95 % CI lies inside the published value's rounding band"
CONSISTENT = "not distinguishable: inside our mean's 95 % CI, but the CI is wider than the rounding band"
SPREAD = "not distinguishable from one run: inside the 95 % prediction interval for one run, not the CI of our mean"
FEWER = "too few finished runs to say"
DISAGREES = "disagrees"
PUBLISHED_VERDICTS = ("agrees", "not distinguishable", DISAGREES, FEWER)


@dataclass(frozen=True)
class PublishedResult:
    """A published single-run number next to ours.

    The published value is one run, rounded to ``rounding`` points, so it stands for the band
    value ± rounding/2. It *agrees* only when an equivalence test at that rounding says so: the whole 95 %
    CI of our mean lies inside the band. When the band merely overlaps our CI, or the 95 % prediction
    interval for one run, the two are *not distinguishable* — a failure to reject, not a match. Outside
    both, the reproduction *disagrees*.
    """

    condition: Condition
    published: float
    summary: Summary | None
    prediction_half: float | None
    delta: float | None  # reproduced mean − published
    match: str
    verdict: str  # one of PUBLISHED_VERDICTS


def compare_published(cond: Condition, metric: str, rounding: float) -> PublishedResult | None:
    if cond.published is None:
        return None
    p = cond.published
    s = summarize(cond.values(metric))
    if s is None or s.half is None:
        return PublishedResult(cond, p, s, None, None if s is None else s.mean - p, FEWER, FEWER)
    pi = prediction_half_width(s)
    assert pi is not None
    lo_p, hi_p = p - rounding / 2, p + rounding / 2

    def overlaps(half: float) -> bool:
        return s.mean - half <= hi_p and s.mean + half >= lo_p

    delta = s.mean - p
    if lo_p <= s.mean - s.half and s.mean + s.half <= hi_p:
        return PublishedResult(cond, p, s, pi, delta, AGREES, "agrees")
    if overlaps(s.half):
        return PublishedResult(cond, p, s, pi, delta, CONSISTENT, "not distinguishable")
    if overlaps(pi):
        return PublishedResult(cond, p, s, pi, delta, SPREAD, "not distinguishable")
    side = "higher" if delta > 0 else "lower"
    gap = (s.mean - pi) - hi_p if delta > 0 else lo_p - (s.mean + pi)
    match = (f"disagrees: reproduced {abs(delta):.1f} pp {side}, {gap:.1f} pp beyond what run-to-run spread "
             "and rounding explain")
    return PublishedResult(cond, p, s, pi, delta, match, DISAGREES)
