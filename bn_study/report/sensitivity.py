"""A nuisance parameter swept for every arm (``report.sensitivity``; the learning rate of lr_sensitivity).

An *arm* is every setting but that parameter (act=sigmoid norm=bn1); its conditions are the parameter's grid
values. From them the report draws the metric against the parameter, gives each arm's best value with the
values not distinguishable from it, and lets claims speak of

- ``<param>: best`` — each seed at the value the arm's *other* seeds do best with (leave-one-seed-out), so
  choosing the best does not flatter the arm with its own noise, and the seeds stay paired;
- ``test: wider_range`` — per seed, how many decades of the grid reach ``threshold`` (each grid value counts
  for its share of the log-spaced axis), so "BN tolerates a wider range of learning rates" is a number per seed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from bn_study.report.collect import Condition, RunRecord, matches
from bn_study.report.failures import by_seed, run_values, worst_value
from bn_study.report.spec import BEST, RANGE, Comparison, Selector, SensitivitySpec, higher_is_better
from bn_study.report.stats import PAIRED, Difference, Summary, contrast, paired, summarize
from bn_study.util.overrides import bare_key


@dataclass(frozen=True)
class Arm:
    """The conditions of one arm, in the order of the parameter's value."""

    choices: Mapping[str, str]  # the arm's settings, the parameter left out
    points: tuple[tuple[float, Condition], ...]
    label: str = "all runs"  # the settings that tell this arm from the others (``norm=none``)

    @property
    def values(self) -> tuple[float, ...]:
        return tuple(x for x, _ in self.points)


@dataclass(frozen=True)
class ArmSummary:
    arm: Arm
    label: str
    summaries: tuple[Summary | None, ...]  # per grid value: finished runs at the epoch
    failed: tuple[int, ...]  # per grid value: runs that diverged or crashed
    best: float | None  # the grid value with the best mean (failed runs at the worst value)
    tied: tuple[float, ...]  # the other values whose difference from the best has a 95 % CI that includes 0
    good_range: Summary | None  # decades of the grid reaching the ``good`` value, over seeds


def _as_number(text: str | None) -> float | None:
    try:
        x = float(text) if text is not None else None
    except ValueError:
        return None
    return x if x is not None and math.isfinite(x) and x > 0 else None


def arms(conditions: Sequence[Condition], param: str) -> list[Arm]:
    """The arms in the report's order of their first condition; conditions without a numeric ``param`` are
    no part of any arm."""
    by: dict[tuple, list[tuple[float, Condition]]] = {}
    for c in conditions:
        x = _as_number(c.choices.get(param))
        if x is None:
            continue
        by.setdefault(tuple((k, v) for k, v in c.choices.items() if k != param), []).append((x, c))
    found = [Arm(dict(k), tuple(sorted(points, key=lambda p: p[0]))) for k, points in by.items()]
    # a condition lists what differs from the defaults, so an arm at a default (norm=none) may name nothing:
    # its label takes the value of each setting some arm's condition names and the arms do not all share, in
    # the conditions' own order (the longest condition names the most of them in that order)
    named = sorted((c.key.split() for a in found for _, c in a.points), key=len, reverse=True)
    keys = list(dict.fromkeys(bare_key(t.partition("=")[0]) for tokens in named for t in tokens if "=" in t))
    keys = [k for k in keys if k != param and len({a.choices.get(k, "default") for a in found}) > 1]
    return [Arm(a.choices, a.points, " ".join(f"{k}={a.choices.get(k, 'default')}" for k in keys) or "all runs")
            for a in found]


def _by_seed(cond: Condition, metric: str, epoch: int | None, worst: float) -> dict[int, float]:
    return by_seed(run_values(cond, metric, epoch, worst))


def _score(metric: str, values: Sequence[float]) -> float:
    """Higher is better, whatever the metric; no values rank last."""
    if not values:
        return -math.inf
    mean = math.fsum(values) / len(values)
    return mean if higher_is_better(metric) else -mean


def _widths(values: Sequence[float]) -> list[float]:
    """Each grid value's share of the log10 axis: half the gap to each neighbour (an end value mirrors its one
    gap), so a uniform grid half a decade apart gives every value 0.5 decades."""
    logs = [math.log10(x) for x in values]
    if len(logs) == 1:
        return [0.0]
    gaps = [b - a for a, b in zip(logs, logs[1:])]
    return [(gaps[0] if i == 0 else gaps[i - 1]) / 2 + (gaps[-1] if i == len(logs) - 1 else gaps[i]) / 2
            for i in range(len(logs))]


def _difference(a: Mapping[int, float], b: Mapping[int, float], analysis: str) -> Difference | None:
    if analysis == PAIRED:
        return paired([(1.0, a), (-1.0, b)])
    return contrast([(1.0, list(a.values())), (-1.0, list(b.values()))])


def summarize_arm(arm: Arm, param: str, metric: str, epoch: int | None, analysis: str,
                  conditions: Sequence[Condition], good: float | None = None) -> ArmSummary:
    worst = worst_value(metric, conditions)
    per_value = [_by_seed(c, metric, epoch, worst) for _, c in arm.points]
    scores = [_score(metric, list(v.values())) for v in per_value]
    best_i = max(range(len(scores)), key=lambda i: scores[i]) if scores and max(scores) > -math.inf else None
    tied = []
    if best_i is not None:
        for i, values in enumerate(per_value):
            if i == best_i:
                continue
            d = _difference(per_value[best_i], values, analysis)
            if d is not None and d.low <= 0 <= d.high:
                tied.append(arm.values[i])
    ranges = good_ranges(arm, good_flags(arm, metric, epoch, good)) if good is not None else {}
    return ArmSummary(
        arm=arm, label=arm.label,
        summaries=tuple(summarize(c.values(metric, epoch)) for _, c in arm.points),
        failed=tuple(sum(r.status == "FAILED" for r in c.runs) for _, c in arm.points),
        best=None if best_i is None else arm.values[best_i], tied=tuple(tied),
        good_range=summarize(list(ranges.values())) if ranges else None)


def arm_summaries(conditions: Sequence[Condition], sens: SensitivitySpec, epoch: int | None,
                  analysis: str) -> tuple[ArmSummary, ...]:
    return tuple(summarize_arm(a, sens.param, sens.metric, epoch, analysis, conditions, sens.good)
                 for a in arms(conditions, sens.param))


def good_flags(arm: Arm, metric: str, epoch: int | None, good: float) -> dict[int, list[bool]]:
    """Per seed, for each grid value in order: whether its run reaches ``good`` (a failed run never does)."""
    up = higher_is_better(metric)
    out: dict[int, list[bool]] = {}
    for i, (_, cond) in enumerate(arm.points):
        for r in cond.runs:
            if r.seed is None:
                continue
            v = r.value(metric, epoch) if r.finished else None
            out.setdefault(r.seed, [False] * len(arm.points))[i] = (
                v is not None and math.isfinite(v) and (v >= good if up else v <= good))
    return out


def good_ranges(arm: Arm, flags: Mapping[int, Sequence[bool]]) -> dict[int, float]:
    """Per seed: the decades of the grid at which its run reaches ``good`` (``flags`` from ``good_flags``)."""
    widths = _widths(arm.values)
    return {seed: math.fsum(w for w, ok in zip(widths, seed_flags) if ok) for seed, seed_flags in flags.items()}


def range_grain(arm: Arm, flags: Mapping[int, Sequence[bool]]) -> float:
    """How far any seed's good range may be from the truth: each edge of its good set lies somewhere between
    a grid value that reaches ``good`` and its neighbour that does not, and is counted at their midpoint, so
    it is off by up to half that gap; summed over the seed's edges, the largest over seeds."""
    logs = [math.log10(x) for x in arm.values]
    gaps = [b - a for a, b in zip(logs, logs[1:])]
    return max((math.fsum(g / 2 for g, x, y in zip(gaps, seed_flags, seed_flags[1:]) if x != y)
                for seed_flags in flags.values()), default=0.0)


def best_condition(arm: Arm, label: str, param: str, metric: str, epoch: int | None,
                   conditions: Sequence[Condition]) -> Condition:
    """Each seed's run at the grid value the arm's other seeds reach the best mean with (failed runs at the
    worst value); the chosen values are in the label."""
    worst = worst_value(metric, conditions)
    per_value = {x: _by_seed(c, metric, epoch, worst) for x, c in arm.points}
    runs: list[RunRecord] = []
    chosen: list[float] = []
    for seed in sorted({r.seed for _, c in arm.points for r in c.runs if r.seed is not None}):
        x = max(arm.values, key=lambda x: _score(metric, [v for s, v in per_value[x].items() if s != seed]))
        run = next((r for r in dict(arm.points)[x].runs if r.seed == seed), None)
        if run is not None:
            runs.append(run)
            chosen.append(x)
    shown = ", ".join(f"{x:g}" for x in sorted(set(chosen), key=chosen.index))
    return Condition(key=f"{label} {param}={BEST}", label=f"{label}, best {param} ({shown}, chosen by the other seeds)",
                     choices={**arm.choices, param: BEST}, runs=tuple(runs))


def range_condition(arm: Arm, label: str, param: str, metric: str, epoch: int | None, good: float) -> Condition:
    """One synthetic finished run per seed whose ``metric`` at ``epoch`` is that seed's good range (decades),
    known to ± the grid's grain (``range_grain``)."""
    step = 0 if epoch is None else epoch
    flags = good_flags(arm, metric, epoch, good)
    runs = tuple(RunRecord(run_id=f"{RANGE}:{seed}", condition=label, choices={**arm.choices, param: RANGE},
                           seed=seed, status="FINISHED", failure=None, history={metric: {step: decades}})
                 for seed, decades in sorted(good_ranges(arm, flags).items()))
    return Condition(key=f"{label} {param}={RANGE}", label=f"{label}: decades of {param} reaching {good:g}",
                     choices={**arm.choices, param: RANGE}, runs=runs, grain=range_grain(arm, flags))


def _arm_for(selector: Selector, every: Sequence[Arm], param: str) -> Arm | None:
    rest = {k: v for k, v in selector.items() if k != param}
    found = [a for a in every if matches(a.choices, rest)]
    return found[0] if len(found) == 1 else None


def resolved(comp: Comparison, conditions: Sequence[Condition]) -> list[Condition]:
    """``conditions`` plus the synthetic ones ``comp`` selects (``<param>: best``, a wider_range arm), so that
    each of its selectors picks out exactly one condition as any other comparison's does."""
    param = comp.over
    if param is None:
        return list(conditions)
    every = arms(conditions, param)
    wanted = [comp.a, comp.b, *(s for s in (comp.under, comp.versus) if s)]
    extra = []
    for selector in wanted:
        arm = _arm_for(selector, every, param)
        if arm is None:
            continue
        label = arm.label
        if comp.test == "wider_range":
            assert comp.threshold is not None
            extra.append(range_condition(arm, label, param, comp.metric, comp.epoch, comp.threshold))
        elif selector.get(param) == BEST:
            extra.append(best_condition(arm, label, param, comp.metric, comp.epoch, conditions))
    unique = {c.key: c for c in extra}
    return [*conditions, *unique.values()]
