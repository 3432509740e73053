"""Claims (from the experiment's ``report:`` section) checked against the conditions' runs.

Every comparison reduces to one number per finished run (a metric at an epoch, or the epochs a run
needed to reach a threshold), a Welch 95 % interval for the effect "A improves on B by", and the
region rule in ``stats.verdict``. Anything that prevents a fair comparison — a condition missing from
the sweep, a selector that matches several, fewer than two finished runs — makes the part
*inconclusive* with the reason written next to it, never a silent pass.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from bn_study.report.collect import Condition, RunRecord, select
from bn_study.report.spec import ClaimSpec, Comparison, Selector, higher_is_better
from bn_study.report.stats import (INCONCLUSIVE, NOT_SUPPORTED, SUPPORTED, Difference, Summary, combine,
                                   prediction_half_width, summarize, verdict, welch)


def epochs_to_reach(run: RunRecord, metric: str, threshold: float) -> int | None:
    """The first epoch (≥ 1) at which the metric reached the threshold; None if it never did."""
    up = higher_is_better(metric)
    for step, value in sorted((run.history.get(metric) or {}).items()):
        if step >= 1 and (value >= threshold if up else value <= threshold):
            return step
    return None


def censored_epochs(cond: Condition, metric: str, threshold: float) -> tuple[list[float], int]:
    """Epochs-to-threshold per finished run; a run that never got there counts as (its last epoch + 1),
    i.e. at least one more epoch than it was given. Returns the values and how many were censored."""
    out, censored = [], 0
    for run in cond.finished:
        hit = epochs_to_reach(run, metric, threshold)
        if hit is None:
            censored += 1
            hit = (run.last_step(metric) or 0) + 1
        out.append(float(hit))
    return out, censored


@dataclass(frozen=True)
class PartResult:
    """One comparison of a claim, with every number the verdict rests on."""

    comparison: Comparison
    a: Condition | None
    b: Condition | None
    a_summary: Summary | None
    b_summary: Summary | None
    effect: Difference | None  # A's improvement over B (positive = A better), Welch 95 % CI
    verdict: str
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class ClaimResult:
    spec: ClaimSpec
    parts: tuple[PartResult, ...]
    verdict: str


def _pick(conditions: Sequence[Condition], selector: Selector) -> tuple[Condition | None, str | None]:
    found = select(conditions, selector)
    shown = ", ".join(f"{k}={v}" for k, v in sorted(selector.items()))
    if not found:
        return None, f"no condition of this sweep matches {{{shown}}}"
    if len(found) > 1:
        return None, f"{{{shown}}} matches {len(found)} conditions ({'; '.join(c.label for c in found)})"
    return found[0], None


def _run_counts(cond: Condition, role: str) -> str | None:
    lost = [r.status for r in cond.runs if not r.finished]
    if not lost:
        return None
    states = ", ".join(f"{s} {lost.count(s)}" for s in sorted(set(lost)))
    return f"{role}: {len(lost)} of {len(cond.runs)} runs did not finish ({states}) and are left out"


def _values(comp: Comparison, cond: Condition | None) -> tuple[list[float], int]:
    """The numbers compared (one per finished run) and how many of them are censored (``faster`` only)."""
    if cond is None:
        return [], 0
    if comp.test == "faster":
        assert comp.threshold is not None
        return censored_epochs(cond, comp.metric, comp.threshold)
    return cond.values(comp.metric, comp.epoch), 0


def evaluate_part(comp: Comparison, conditions: Sequence[Condition]) -> PartResult:
    a, why_a = _pick(conditions, comp.a)
    b, why_b = _pick(conditions, comp.b)
    (va, ca), (vb, cb) = _values(comp, a), _values(comp, b)
    sa, sb = summarize(va), summarize(vb)
    notes = [n for n in (why_a, why_b) if n]
    notes += [n for n in (a and _run_counts(a, "A"), b and _run_counts(b, "B")) if n]
    if a is None or b is None:
        return PartResult(comp, a, b, sa, sb, None, INCONCLUSIVE, tuple(notes))
    if comp.test == "faster":
        if ca or cb:
            notes.append(f"runs that never reached {comp.threshold:g} count as one epoch past the end "
                         f"(A: {ca}, B: {cb})")
        effect = welch(vb, va)  # fewer epochs is better: B − A
    else:
        effect = welch(va, vb) if higher_is_better(comp.metric) else welch(vb, va)
    if effect is None:
        at = "" if comp.epoch is None or comp.test == "faster" else f" at epoch {comp.epoch}"
        notes.append(f"needs at least 2 finished runs with {comp.metric}{at} in each condition "
                     f"(A: {len(va)}, B: {len(vb)})")
        return PartResult(comp, a, b, sa, sb, None, INCONCLUSIVE, tuple(notes))
    v = verdict(effect.low, effect.high, comp.region())
    if comp.test == "faster" and ((v == NOT_SUPPORTED and cb) or (v == SUPPORTED and ca)):
        # A censored run of B only hides how slow B really is (the effect can only be larger), one of
        # A only how slow A is (it can only be smaller): a verdict the censoring could flip is withheld.
        notes.append(f"censored runs make this effect only a bound, so the verdict ({v}) is withheld; "
                     "more epochs would settle it")
        v = INCONCLUSIVE
    return PartResult(comp, a, b, sa, sb, effect, v, tuple(notes))


def evaluate(claim: ClaimSpec, conditions: Sequence[Condition]) -> ClaimResult:
    parts = tuple(evaluate_part(p, conditions) for p in claim.parts)
    return ClaimResult(claim, parts, combine([p.verdict for p in parts]))


# --- published numbers (the book) ---------------------------------------------------------------------

AGREES = "agrees (inside the 95 % CI of our mean)"
SPREAD = "agrees with one run's spread (inside the 95 % prediction interval, not the CI of the mean)"
FEWER = "too few finished runs to say"


@dataclass(frozen=True)
class PublishedResult:
    """A published single-run number next to ours.

    The published value is one run, rounded to ``rounding`` points, so it is taken as the interval
    value ± rounding/2 and compared first with the CI of our mean (does our average agree?) and then
    with the 95 % prediction interval for one run (could one of our runs have printed it?). Only when
    it lies outside both does the report say the reproduction disagrees.
    """

    condition: Condition
    published: float
    summary: Summary | None
    prediction_half: float | None
    delta: float | None  # reproduced mean − published
    match: str
    verdict: str


def compare_published(cond: Condition, metric: str, rounding: float) -> PublishedResult | None:
    if cond.published is None:
        return None
    p = cond.published
    s = summarize(cond.values(metric))
    if s is None or s.half is None:
        return PublishedResult(cond, p, s, None, None if s is None else s.mean - p, FEWER, INCONCLUSIVE)
    pi = prediction_half_width(s)
    assert pi is not None
    lo_p, hi_p = p - rounding / 2, p + rounding / 2

    def overlaps(half: float) -> bool:
        return s.mean - half <= hi_p and s.mean + half >= lo_p

    delta = s.mean - p
    if overlaps(s.half):
        return PublishedResult(cond, p, s, pi, delta, AGREES, SUPPORTED)
    if overlaps(pi):
        return PublishedResult(cond, p, s, pi, delta, SPREAD, SUPPORTED)
    side = "higher" if delta > 0 else "lower"
    gap = (s.mean - pi) - hi_p if delta > 0 else lo_p - (s.mean + pi)
    match = (f"disagrees: reproduced {abs(delta):.1f} pp {side}, {gap:.1f} pp beyond what run-to-run spread "
             "and rounding explain")
    return PublishedResult(cond, p, s, pi, delta, match, NOT_SUPPORTED)

