"""Claims (from the experiment's ``report:`` section) checked against the conditions' runs.

Every comparison reduces to one number per run (a metric at an epoch, or the epochs a run needed to
reach a threshold), an interval for the effect "A improves on B by" (Welch, or paired over seeds), and
the region rule in ``stats.verdict``. Anything that prevents a fair comparison — a condition missing from
the sweep, a selector that matches several, fewer than two finished runs — makes the part
*inconclusive* with the reason written next to it, never a silent pass. Failed runs are left out of the
verdict but never forgotten: each part is judged a second time with them at the worst value, and a
verdict that only holds without them says so. ``correct`` then applies Holm across a report's claims.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

from bn_study.data.catalog import DATASETS, val_size
from bn_study.report.collect import Condition, RunRecord, select
from bn_study.report.epochs import epochs_by_run
from bn_study.report.failures import by_seed, failed_runs, run_values, worst_value
from bn_study.report.sensitivity import resolved
from bn_study.report.spec import ClaimSpec, Comparison, Selector, higher_is_better
from bn_study.report.stats import (ALPHA, CONTRADICTED, DECIDED, EXCEEDED, INCONCLUSIVE, LEVEL, PAIRED, SUPPORTED,
                                   Difference, Summary, binomial_se, combine, contrast, holm, paired,
                                   p_values, summarize, verdict, widened)

@dataclass(frozen=True)
class PartResult:
    """One comparison of a claim, with every number the verdict rests on."""

    comparison: Comparison
    a: Condition | None
    b: Condition | None
    a_summary: Summary | None
    b_summary: Summary | None
    effect: Difference | None  # A's improvement over B (positive = A better), 95 % CI
    verdict: str
    notes: tuple[str, ...] = ()
    # verdicts the censoring of epochs-to-threshold could flip: never given, at any level
    withheld: tuple[str, ...] = ()
    # faster: how many runs of A and of B never reached the threshold (counted one epoch past their end), which
    # makes the effect a bound, not an estimate (claims_table shows it as one)
    censored: tuple[int, int] = (0, 0)
    # interaction: the same gain under ``versus`` (A and B there), and the two gains themselves
    a2: Condition | None = None
    b2: Condition | None = None
    gains: tuple[Difference | None, Difference | None] = (None, None)
    # the same part with failed runs at the worst value (None when no arm has a failed run)
    with_failures: PartResult | None = None

    @property
    def p(self) -> dict[str, float]:
        """verdict → the smallest α at which it is reached (1 for verdicts withheld or out of reach)."""
        if self.effect is None:
            return {v: 1.0 for v in DECIDED}
        found = p_values(self.effect, self.comparison.region())
        return {v: 1.0 if v in self.withheld else found[v] for v in DECIDED}

    def verdict_at(self, level: float) -> str:
        if self.effect is None:
            return INCONCLUSIVE
        v = verdict(*self.effect.interval(level), self.comparison.region(), self.effect.open_ends)
        return INCONCLUSIVE if v in self.withheld else v

    @property
    def relative_error(self) -> tuple[float, float, float] | None:
        """An accuracy effect as the share of B's errors that A removes (estimate, low, high), B's error
        rate taken as known."""
        comp = self.comparison
        if self.effect is None or self.b_summary is None or comp.quantity() != comp.metric \
                or comp.test == "interaction" or not comp.metric.endswith("_acc"):
            return None
        errors = 100.0 - self.b_summary.mean
        if errors <= 0:
            return None
        e = self.effect
        # A cannot remove more than all of B's errors: an interval end past that is B's own noise
        return min(e.estimate / errors, 1.0), min(e.low / errors, 1.0), min(e.high / errors, 1.0)

    def sampling_se(self) -> tuple[float, float] | None:
        """The test-set (binomial) standard error of ONE run's accuracy, for A and for B, in pp."""
        comp = self.comparison
        if comp.quantity() != comp.metric or comp.test == "interaction" or not comp.metric.endswith("_acc"):
            return None
        out = []
        for cond, s in ((self.a, self.a_summary), (self.b, self.b_summary)):
            if cond is None or s is None:
                return None
            name = cond.choices.get("data.name", "mnist")
            split = "test" if comp.metric.startswith("test_") else cond.choices.get("data.val", "test")
            if name not in DATASETS:
                return None
            out.append(binomial_se(s.mean, val_size(name, split)))
        return out[0], out[1]


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


def _values(comp: Comparison, cond: Condition | None,
            worst: float | None) -> tuple[list[tuple[RunRecord, float]], int, float]:
    """The numbers compared, one per run (finished runs; failed ones too, at ``worst``, unless it is None),
    how many of them are censored and the grain they are known to (``faster``: one-sided, a time E lies in
    (E − grain, E]; ``wider_range``: ± grain)."""
    if cond is None:
        return [], 0, 0.0
    if comp.test == "faster":
        assert comp.threshold is not None
        return epochs_by_run(cond, comp.metric, comp.threshold, with_failed=worst is not None, by=comp.by)
    return run_values(cond, comp.metric, comp.epoch, worst), 0, cond.grain


def _gain(comp: Comparison, va: Sequence[tuple[RunRecord, float]], vb: Sequence[tuple[RunRecord, float]],
          sign: float = 1.0) -> list[tuple[float, Sequence[tuple[RunRecord, float]]]]:
    """The terms of "A improves on B": A − B for accuracies, B − A for losses and epochs."""
    up = comp.test == "wider_range" or (comp.test != "faster" and higher_is_better(comp.metric))
    s = sign if up else -sign
    return [(s, va), (-s, vb)]


def _estimate(comp: Comparison, terms: list[tuple[float, Sequence[tuple[RunRecord, float]]]]) -> Difference | None:
    if comp.analysis == PAIRED:
        return paired([(c, by_seed(xs)) for c, xs in terms])
    return contrast([(c, [v for _, v in xs]) for c, xs in terms])


def _sides(comp: Comparison) -> list[tuple[Selector, Selector]]:
    if comp.test != "interaction":
        return [(comp.a, comp.b)]
    return [({**comp.a, **(comp.under or {})}, {**comp.b, **(comp.under or {})}),
            ({**comp.a, **(comp.versus or {})}, {**comp.b, **(comp.versus or {})})]


def evaluate_part(comp: Comparison, conditions: Sequence[Condition], *, failures: bool = False) -> PartResult:
    """``failures``: count failed runs at the worst value instead of leaving them out (the sensitivity view)."""
    pool = resolved(comp, conditions)  # with the conditions a ``best`` or wider_range selector means
    picked = [(_pick(pool, a), _pick(pool, b)) for a, b in _sides(comp)]
    conds = [c for pair in picked for c, _ in pair]
    notes = [why for pair in picked for _, why in pair if why]
    # for ``faster`` only whether failed runs count matters: they never reach the threshold
    worst = worst_value(comp.metric, conditions) if failures else None
    values = [_values(comp, c, worst) for c in conds]
    a, b = conds[0], conds[1]
    a2, b2 = (conds[2], conds[3]) if len(conds) == 4 else (None, None)
    sa, sb = (summarize([v for _, v in values[i][0]]) for i in (0, 1))
    roles = ("A", "B", "A (versus)", "B (versus)")
    if not failures:
        notes += [n for c, role in zip(conds, roles) if c is not None and (n := _run_counts(c, role))]
    result = PartResult(comp, a, b, sa, sb, None, INCONCLUSIVE, a2=a2, b2=b2)
    if any(c is None for c in conds):
        return replace(result, notes=tuple(notes))
    terms = _gain(comp, values[0][0], values[1][0])
    gains: tuple[Difference | None, Difference | None] = (None, None)
    if comp.test == "interaction":
        second = _gain(comp, values[2][0], values[3][0], sign=-1.0)
        gains = (_estimate(comp, terms), _estimate(comp, [(-c, xs) for c, xs in second]))
        terms = terms + second
    effect = _estimate(comp, terms)
    if effect is not None and comp.test == "faster":
        # a time E lies in (E − grain, E]: +c·time can be up to c·grain lower, −c·time up to c·grain higher
        grains = [g for _, _, g in values]
        coefs = [c for c, _ in terms]
        effect = widened(effect, math.fsum(c * g for c, g in zip(coefs, grains) if c > 0),
                         math.fsum(-c * g for c, g in zip(coefs, grains) if c < 0))
    elif effect is not None and any(g for _, _, g in values):
        # a value known to ± grain moves c·value by up to |c|·grain either way
        slack = math.fsum(abs(c) * g for (c, _), (_, _, g) in zip(terms, values))
        effect = widened(effect, slack, slack)
    withheld: tuple[str, ...] = ()
    if comp.test == "faster":
        ca, cb = values[0][1], values[1][1]
        if ca or cb:
            notes.append(f"runs that never reached {comp.threshold:g} count as one epoch past the end "
                         f"(A: {ca}, B: {cb})")
        # A censored run of B only hides how slow B really is (the effect can only be larger), one of A only
        # how slow A is (it can only be smaller): a verdict the censoring could flip is withheld.
        if cb:
            withheld += (CONTRADICTED,) + ((SUPPORTED,) if not math.isinf(comp.region().high) else ())
        if ca:
            withheld += (SUPPORTED, EXCEEDED)
        result = replace(result, censored=(ca, cb))
    if effect is None:
        at = "" if comp.epoch is None or comp.test == "faster" else f" at epoch {comp.epoch}"
        counts = ", ".join(f"{r}: {len(v[0])}" for r, v in zip(roles, values))
        if comp.analysis == PAIRED:
            notes.append(f"needs at least 2 seeds with {comp.metric}{at} finished in every condition ({counts})")
        else:
            notes.append(f"needs at least 2 finished runs with {comp.metric}{at} in each condition ({counts})")
        return replace(result, notes=tuple(notes), gains=gains)
    result = replace(result, effect=effect, withheld=tuple(sorted(set(withheld))), gains=gains)
    v = result.verdict_at(LEVEL)
    raw = verdict(effect.low, effect.high, comp.region(), effect.open_ends)
    if v != raw:
        notes.append(f"censored runs make this effect only a bound, so the verdict ({raw}) is withheld; "
                     "more epochs would settle it")
    result = replace(result, verdict=v, notes=tuple(notes))
    if not failures and any(failed_runs(c) for c in conds):
        other = evaluate_part(comp, conditions, failures=True)
        result = replace(result, with_failures=other)
        if other.verdict != v:
            lost = sum(failed_runs(c) for c in conds)
            shown = "chance accuracy" if higher_is_better(comp.metric) and comp.test != "faster" else (
                "never reaching it" if comp.test == "faster" else "the worst loss any run logged")
            result = replace(result, notes=result.notes + (
                f"this verdict depends on leaving out {lost} failed run(s): counted at {shown}, it would be "
                f"{other.verdict}",))
    return result


@dataclass(frozen=True)
class ClaimResult:
    """A claim's parts, its verdict at 95 % (``verdict``, uncorrected) and after Holm across the report
    (``corrected``, with the Holm-adjusted p-value); ``look``: the sequential look that decided it."""

    spec: ClaimSpec
    parts: tuple[PartResult, ...]
    verdict: str
    corrected: str = INCONCLUSIVE
    adjusted_p: float = 1.0
    look: int | None = None
    seeds: int | None = None  # seeds per condition at that look
    alpha: float = ALPHA  # the error Holm shared out among the claims (a sequential look's share of it)

    @property
    def p(self) -> float:
        """The smallest α at which this claim is decided, one way or another."""
        ps = [part.p for part in self.parts]
        support = max(p[SUPPORTED] for p in ps)
        failing = min(min(p[CONTRADICTED], p[EXCEEDED]) for p in ps)
        return min(support, failing)

    def verdict_at(self, level: float) -> str:
        return combine([part.verdict_at(level) for part in self.parts])


def evaluate(claim: ClaimSpec, conditions: Sequence[Condition]) -> ClaimResult:
    parts = tuple(evaluate_part(p, conditions) for p in claim.parts)
    v = combine([p.verdict for p in parts])
    return ClaimResult(claim, parts, v, corrected=v)


def correct(results: Sequence[ClaimResult], alpha: float = ALPHA) -> list[ClaimResult]:
    """Holm's step-down across ``results``: in order of their p-values, the k-th claim (of m) is judged at
    level 1 − α/(m − k + 1); the first one left undecided stops the procedure, and it and every later
    claim are inconclusive after correction."""
    adjusted = holm([r.p for r in results])
    order = sorted(range(len(results)), key=lambda i: (results[i].p, i))
    out = list(results)
    stopped = False
    for rank, i in enumerate(order):
        level = 1 - alpha / (len(results) - rank)
        v = INCONCLUSIVE if stopped else results[i].verdict_at(level)
        stopped = stopped or v == INCONCLUSIVE
        out[i] = replace(results[i], corrected=v, adjusted_p=adjusted[i], alpha=alpha)
    return out
