"""Claims and published numbers checked field by field: every note the report prints, every number a verdict
rests on, and each boundary of the rules (a value exactly at the threshold, a CI touching the rounding band)."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
from scipy import stats as sps

from bn_study.report.claims import ClaimResult, PartResult, evaluate, evaluate_part
from bn_study.report.epochs import epochs_by_run, epochs_to_reach, steps_at
from bn_study.report.published import AGREES, CONSISTENT, DISAGREES, FEWER, SPREAD, PublishedResult, compare_published
from bn_study.report.collect import Condition, override_choices
from bn_study.report.spec import ClaimSpec, Comparison
from bn_study.report.stats import (CONTRADICTED, EXCEEDED, INCONCLUSIVE, SUPPORTED, Difference, Summary, summarize,
                                   welch)
from test_report_stats import BN, NONE, SEL_BN, SEL_NONE, condition, run

F = "FINISHED"


def arm(key: str, histories: list[dict[str, dict[int, float]]], statuses: tuple[str, ...] | None = None) -> Condition:
    """A condition whose runs have exactly these histories (one per seed)."""
    statuses = statuses or (F,) * len(histories)
    runs = tuple(run(key, s, h, st) for s, (h, st) in enumerate(zip(histories, statuses)))
    return Condition(key=key, label=key, choices=override_choices(key), runs=runs)


def epochs(first: int, last: int, reach: int | None) -> dict[str, dict[int, float]]:
    """A val_acc history over epochs first..last that jumps from 50 to 95 at epoch ``reach`` (None: never)."""
    return {"val_acc": {e: 95.0 if reach is not None and e >= reach else 50.0 for e in range(first, last + 1)}}


def exact(values: list[float]) -> Summary:
    """The summary of identical values: mean, and a zero-width interval."""
    return Summary(len(values), values[0], 0.0, 0.0)


# --- epochs to a threshold ----------------------------------------------------------------------------------

def test_epochs_to_reach_counts_the_first_epoch_at_or_past_the_threshold():
    exactly = run(BN, 0, {"val_acc": {1: 89.9, 2: 90.0, 3: 97.0}})
    assert epochs_to_reach(exactly, "val_acc", 90) == 2  # exactly at the threshold counts
    assert epochs_to_reach(run(BN, 0, {"val_acc": {1: 92.0, 2: 95.0}}), "val_acc", 90) == 1
    assert epochs_to_reach(run(BN, 0, {"val_acc": {3: 97.0, 2: 95.0, 1: 50.0}}), "val_acc", 90) == 2  # by epoch
    assert epochs_to_reach(run(BN, 0, {"val_acc": {1: 50.0}}), "val_acc", 90) is None
    assert epochs_to_reach(run(BN, 0, {}), "val_acc", 90) is None


def test_epoch_zero_is_before_training_and_never_counts():
    assert epochs_to_reach(run(BN, 0, {"val_acc": {0: 95.0, 1: 50.0, 2: 91.0}}), "val_acc", 90) == 2


def test_a_loss_reaches_its_threshold_from_above():
    r = run(BN, 0, {"train_loss": {0: 0.1, 1: 0.5, 2: 0.3, 3: 0.2}})
    assert epochs_to_reach(r, "train_loss", 0.3) == 2  # exactly 0.3 counts; epoch 0 does not
    assert epochs_to_reach(r, "train_loss", 0.05) is None


def test_runs_that_never_arrive_count_as_one_epoch_past_their_last():
    cond = arm(NONE, [epochs(1, 3, 2), epochs(1, 3, None), {"val_acc": {1: 40.0}}, {}, epochs(1, 3, 1)],
               statuses=(F, F, F, F, "FAILED"))
    # reached at 2; never in 3 epochs → 4; never in 1 → 2; never logged → 1; the failed run is left out
    assert censored(cond, 90) == ([2.0, 4.0, 2.0, 1.0], 3)
    assert censored(cond, 30) == ([1.0, 1.0, 1.0, 1.0], 1)


def censored(cond: Condition, threshold: float, by: str = "epochs") -> tuple[list[float], int]:
    values, late, _ = epochs_by_run(cond, "val_acc", threshold, with_failed=False, by=by)
    return [v for _, v in values], late


# --- one comparison: every field ------------------------------------------------------------------------------

CONDS = [condition(BN, {1: 92.0}), condition(NONE, {1: 11.0})]


def at1(cond: Condition) -> Summary:
    return summarize(cond.values("val_acc", 1))


def test_a_missing_condition_is_named_with_its_selector():
    comp = Comparison("better", {"norm": "bn1", "act": "relu"}, SEL_NONE, epoch=1)
    assert evaluate_part(comp, CONDS) == PartResult(
        comp, None, CONDS[1], None, at1(CONDS[1]), None, INCONCLUSIVE,
        ("no condition of this sweep matches {act=relu, norm=bn1}",))
    comp = Comparison("better", SEL_BN, {"act": "tanh"}, epoch=1)
    assert evaluate_part(comp, CONDS) == PartResult(
        comp, CONDS[0], None, at1(CONDS[0]), None, None, INCONCLUSIVE,
        ("no condition of this sweep matches {act=tanh}",))


def test_an_ambiguous_selector_lists_what_it_matches():
    comp = Comparison("better", {"act": "sigmoid"}, {"act": "relu"}, epoch=1)
    assert evaluate_part(comp, CONDS) == PartResult(
        comp, None, None, None, None, None, INCONCLUSIVE,
        ("{act=sigmoid} matches 2 conditions (act=sigmoid norm=bn1; act=sigmoid norm=none)",
         "no condition of this sweep matches {act=relu}"))


def test_a_missing_condition_still_reports_the_other_ones_lost_runs():
    b = condition(NONE, {1: 11.0}, statuses=(F,) * 4 + ("FAILED",))
    comp = Comparison("better", {"act": "relu"}, SEL_NONE, epoch=1)
    assert evaluate_part(comp, [CONDS[0], b]) == PartResult(
        comp, None, b, None, at1(b), None, INCONCLUSIVE,
        ("no condition of this sweep matches {act=relu}",
         "B: 1 of 5 runs did not finish (FAILED 1) and are left out"))


def test_lost_runs_are_counted_per_state_and_the_rest_compared():
    a = condition(BN, {1: 92.0}, statuses=(F, F, "KILLED", "FAILED", "FAILED"))
    b = condition(NONE, {1: 11.0}, statuses=(F,) * 4 + ("FAILED",))
    comp = Comparison("better", SEL_BN, SEL_NONE, epoch=1)
    va, vb = a.values("val_acc", 1), b.values("val_acc", 1)
    assert len(va) == 2 and len(vb) == 4
    part = evaluate_part(comp, [a, b])
    assert replace(part, with_failures=None) == PartResult(
        comp, a, b, summarize(va), summarize(vb), welch(va, vb), SUPPORTED,
        ("A: 3 of 5 runs did not finish (FAILED 2, KILLED 1) and are left out",
         "B: 1 of 5 runs did not finish (FAILED 1) and are left out",
         "this verdict depends on leaving out 3 failed run(s): counted at chance accuracy, it would be inconclusive"))
    # the sensitivity view puts the 3 FAILED runs back at chance (10 %); the KILLED one stays out
    w = part.with_failures
    assert w.a_summary.n == 4 and w.b_summary.n == 5
    assert sorted(w.a_summary.mean * 4 - 10 * 2 for _ in [0]) == pytest.approx([sum(va)])  # two at 10 %
    assert w.verdict == INCONCLUSIVE  # A = {91.8, 91.9, 10, 10}: too spread to beat B's 11


def test_the_effect_is_a_minus_b_for_accuracies():
    conds = [condition(BN, {1: 92.0, 2: 95.0}), condition(NONE, {1: 11.0, 2: 94.9})]
    comp = Comparison("better", SEL_BN, SEL_NONE, epoch=1, min_effect=5)
    va, vb = conds[0].values("val_acc", 1), conds[1].values("val_acc", 1)
    assert evaluate_part(comp, conds) == PartResult(comp, conds[0], conds[1], summarize(va), summarize(vb),
                                                    welch(va, vb), SUPPORTED, ())
    assert welch(va, vb).estimate == pytest.approx(81.0)


def test_the_effect_is_b_minus_a_for_losses():
    conds = [condition(BN, {3: 0.10}, metric="train_loss", noise=0.001),
             condition(NONE, {3: 2.30}, metric="train_loss", noise=0.001)]
    comp = Comparison("better", SEL_BN, SEL_NONE, metric="train_loss")
    va, vb = conds[0].values("train_loss"), conds[1].values("train_loss")
    assert evaluate_part(comp, conds) == PartResult(comp, conds[0], conds[1], summarize(va), summarize(vb),
                                                    welch(vb, va), SUPPORTED, ())


def test_too_few_runs_at_the_last_epoch_is_said():
    a = condition(BN, {1: 92.0}, statuses=(F,) + ("FAILED",) * 4)
    comp = Comparison("better", SEL_BN, SEL_NONE)
    assert evaluate_part(comp, [a, CONDS[1]]) == PartResult(
        comp, a, CONDS[1], summarize(a.values("val_acc")), summarize(CONDS[1].values("val_acc")), None, INCONCLUSIVE,
        ("A: 4 of 5 runs did not finish (FAILED 4) and are left out",
         "needs at least 2 finished runs with val_acc in each condition (A: 1, B: 5)"))


def test_too_few_runs_at_an_epoch_names_the_epoch():
    comp = Comparison("better", SEL_BN, SEL_NONE, epoch=7)
    assert evaluate_part(comp, CONDS) == PartResult(
        comp, CONDS[0], CONDS[1], None, None, None, INCONCLUSIVE,
        ("needs at least 2 finished runs with val_acc at epoch 7 in each condition (A: 0, B: 0)",))


def test_too_few_runs_to_time_names_no_epoch():
    a = arm(BN, [epochs(1, 2, 1)] + [epochs(1, 2, 1)] * 4, statuses=(F,) + ("FAILED",) * 4)
    b = arm(NONE, [epochs(1, 2, 2)] * 5)
    comp = Comparison("faster", SEL_BN, SEL_NONE, epoch=2, threshold=90)
    assert evaluate_part(comp, [a, b]) == PartResult(
        comp, a, b, Summary(1, 1.0, None, None), exact([2.0] * 5), None, INCONCLUSIVE,
        ("A: 4 of 5 runs did not finish (FAILED 4) and are left out",
         "needs at least 2 finished runs with val_acc in each condition (A: 1, B: 5)"))


# --- faster: censored runs ------------------------------------------------------------------------------------

FAST, NEVER = arm(BN, [epochs(1, 3, 1)] * 5), arm(NONE, [epochs(1, 3, None)] * 5)


def test_faster_without_censoring_adds_no_note():
    slower = arm(NONE, [epochs(1, 3, 2)] * 5)
    comp = Comparison("faster", SEL_BN, SEL_NONE, threshold=90)
    assert evaluate_part(comp, [FAST, slower]) == PartResult(
        comp, FAST, slower, exact([1.0] * 5), exact([2.0] * 5),
        # every seed alike, but each time is known only to its epoch: (0, 2), never [1, 1]; 0 excluded
        Difference(1.0, 0.0, 2.0, math.inf, 0.0, "welch", 10, slack=(1.0, 1.0)), SUPPORTED, ())


def test_faster_than_a_run_that_never_arrives_is_supported_and_says_so():
    comp = Comparison("faster", SEL_BN, SEL_NONE, threshold=90.5)
    assert evaluate_part(comp, [FAST, NEVER]) == PartResult(
        comp, FAST, NEVER, exact([1.0] * 5), exact([4.0] * 5), Difference(3.0, 2.0, 4.0, math.inf, 0.0, "welch", 10,
                                                                         slack=(1.0, 1.0)),
        SUPPORTED, ("runs that never reached 90.5 count as one epoch past the end (A: 0, B: 5)",),
        withheld=(CONTRADICTED,), censored=(0, 5))


def test_slower_when_the_slow_arm_never_arrives_is_not_supported():
    comp = Comparison("faster", SEL_NONE, SEL_BN, threshold=90)
    assert evaluate_part(comp, [FAST, NEVER]) == PartResult(
        comp, NEVER, FAST, exact([4.0] * 5), exact([1.0] * 5), Difference(-3.0, -4.0, -2.0, math.inf, 0.0, "welch", 10,
                                                                            slack=(1.0, 1.0)),
        CONTRADICTED, ("runs that never reached 90 count as one epoch past the end (A: 5, B: 0)",),
        withheld=(EXCEEDED, SUPPORTED), censored=(5, 0))


def test_not_faster_is_withheld_when_b_was_censored():
    never_a = arm(BN, [epochs(1, 3, None)] * 5)
    comp = Comparison("faster", SEL_BN, SEL_NONE, threshold=90)
    assert evaluate_part(comp, [never_a, NEVER]) == PartResult(
        comp, never_a, NEVER, exact([4.0] * 5), exact([4.0] * 5),
        Difference(0.0, -1.0, 1.0, math.inf, 0.0, "welch", 10, slack=(1.0, 1.0)), INCONCLUSIVE,
        ("runs that never reached 90 count as one epoch past the end (A: 5, B: 5)",), withheld=(CONTRADICTED, EXCEEDED, SUPPORTED), censored=(5, 5))


def test_faster_is_withheld_when_a_was_censored():
    # A: four runs at epoch 1, one never within 10 epochs (→ 11); B: every run at epoch 10
    a = arm(BN, [epochs(1, 10, 1)] * 4 + [epochs(1, 10, None)])
    b = arm(NONE, [epochs(1, 10, 10)] * 5)
    comp = Comparison("faster", SEL_BN, SEL_NONE, threshold=90)
    part = evaluate_part(comp, [a, b])
    va, vb = [1.0, 1.0, 1.0, 1.0, 11.0], [10.0] * 5
    h = sps.t.ppf(0.975, 4) * 2.0  # se = sd(va)/√5 = √20/√5 = 2, Welch df = 4 (B has no spread)
    assert part == PartResult(comp, a, b, summarize(va), exact(vb), part.effect, INCONCLUSIVE,
                              ("runs that never reached 90 count as one epoch past the end (A: 1, B: 0)",
                               "censored runs make this effect only a bound, so the verdict (supported) is "
                               "withheld; more epochs would settle it"), withheld=(EXCEEDED, SUPPORTED),
                              censored=(1, 0))
    e = part.effect
    assert (e.estimate, e.low, e.high, e.df) == pytest.approx((7.0, 7 - h - 1, 7 + h + 1, 4))
    assert part.effect.low > 0  # without the censoring this would have been "supported"


def with_steps(history: dict[str, dict[int, float]], per_epoch: float, last: float | None = None) -> dict:
    """The history plus the optimizer steps made by each epoch's end; ``last``: a last epoch cut short there."""
    epochs_logged = sorted(history["val_acc"])
    steps = {e: per_epoch * e for e in epochs_logged if e >= 1}
    if last is not None:
        steps[max(steps)] = last
    return {**history, "steps": steps}


def test_time_in_steps_is_the_steps_made_by_the_epoch_that_reached_it_or_one_epochs_worth_past_the_end():
    cond = arm(NONE, [with_steps(epochs(1, 3, 2), 10), with_steps(epochs(1, 3, None), 10),
                      with_steps(epochs(1, 2, None), 32, last=40), epochs(1, 3, 1)])
    # reached at epoch 2 = 20 steps; never in 30 → 30 + 10; never in a run cut short at 40 (its last epoch
    # 8 steps long) → 48; a run that logged no steps is left out of a count in steps
    assert censored(cond, 90, by="steps") == ([20.0, 40.0, 48.0], 2)
    assert censored(cond, 90) == ([2.0, 4.0, 3.0, 1.0], 2)
    # each time is known to its epoch: in steps the longest such epoch (10; the cut-short one is 8)
    assert epochs_by_run(cond, "val_acc", 90, with_failed=False, by="steps")[2] == 10.0
    assert epochs_by_run(cond, "val_acc", 90, with_failed=False)[2] == 1.0
    only = run(NONE, 0, {"val_acc": {1: 50.0}, "steps": {1: 938.0}})
    assert steps_at(only, 1) == 938.0 and steps_at(only, 2) == 1876.0  # a single epoch: its own length again


def test_faster_by_steps_can_reverse_faster_by_epochs():
    """Batch 4 reaches the threshold in fewer epochs but, at 15 000 steps an epoch, in more steps than batch 64."""
    small = arm("batch_size=4", [with_steps(epochs(1, 10, 2), 15000)] * 5)
    large = arm("batch_size=64", [with_steps(epochs(1, 10, r), 938) for r in (8, 8, 9, 9, 8)])
    a, b = {"batch_size": "4"}, {"batch_size": "64"}
    by_epochs = evaluate_part(Comparison("faster", a, b, threshold=90), [small, large])
    by_steps = evaluate_part(Comparison("faster", a, b, threshold=90, by="steps"), [small, large])
    assert by_epochs.verdict == SUPPORTED and by_epochs.effect.estimate == pytest.approx(8.4 - 2)
    assert by_steps.verdict == CONTRADICTED
    assert by_steps.effect.estimate == pytest.approx(938 * 8.4 - 30000)
    # B − A: B's time may be up to one of B's epochs shorter (938 steps), A's up to one of A's (15 000)
    assert by_steps.effect.slack == (938.0, 15000.0)
    assert (by_steps.effect.low, by_steps.effect.high) == pytest.approx(
        by_steps.effect.interval()) and by_steps.effect.high - by_steps.effect.estimate > 15000
    assert by_steps.comparison.measured() == "steps to reach val_acc ≥ 90" and by_steps.comparison.unit() == " steps"


# --- a claim -------------------------------------------------------------------------------------------------

def test_a_claim_keeps_its_spec_and_every_part():
    parts = (Comparison("better", SEL_BN, SEL_NONE, epoch=1),
             Comparison("equivalent", SEL_BN, SEL_NONE, epoch=1, margin=1.0),
             Comparison("better", SEL_BN, {"act": "relu"}, epoch=1))
    claim = ClaimSpec("x", "all three", parts)
    result = evaluate(claim, CONDS)
    assert result == ClaimResult(claim, tuple(evaluate_part(p, CONDS) for p in parts), EXCEEDED, EXCEEDED)
    assert [p.verdict for p in result.parts] == [SUPPORTED, EXCEEDED, INCONCLUSIVE]
    holds = ClaimSpec("y", "holds", parts[:1])
    assert evaluate(holds, CONDS) == ClaimResult(holds, (evaluate_part(parts[0], CONDS),), SUPPORTED, SUPPORTED)


# --- published single runs -----------------------------------------------------------------------------------

def published(mean: float, p: float, noise: float = 0.1, statuses: tuple[str, ...] = (F,) * 5) -> Condition:
    return condition("v=x", {3: mean}, metric="test_acc", noise=noise, statuses=statuses, published=p)


def test_published_wording():
    assert AGREES == "agrees: our mean's 95 % CI lies inside the published value's rounding band"
    assert CONSISTENT == "not distinguishable: inside our mean's 95 % CI, but the CI is wider than the rounding band"
    assert SPREAD == ("not distinguishable from one run: inside the 95 % prediction interval for one run, "
                      "not the CI of our mean")
    assert FEWER == "too few finished runs to say"


def test_published_without_our_runs_is_too_few_to_say():
    cond = condition("v=x", {3: 90.0}, metric="val_acc", published=87)  # no test_acc at all
    assert compare_published(cond, "test_acc", 1.0) == PublishedResult(cond, 87, None, None, None, FEWER, FEWER)


def test_published_against_one_run_is_too_few_to_say():
    cond = published(90.0, 87, statuses=(F,) + ("FAILED",) * 4)
    s = summarize(cond.values("test_acc"))
    assert s.n == 1
    assert compare_published(cond, "test_acc", 1.0) == PublishedResult(cond, 87, s, None, s.mean - 87, FEWER, FEWER)
    assert s.mean - 87 == pytest.approx(2.8)


def _expected(cond: Condition, p: float, match: str, verdict: str) -> PublishedResult:
    s = summarize(cond.values("test_acc"))
    pi = sps.t.ppf(0.975, s.n - 1) * s.sd * math.sqrt(1 + 1 / s.n)
    return PublishedResult(cond, p, s, pytest.approx(pi), pytest.approx(s.mean - p), match, verdict)


ND = "not distinguishable"


# noise 0.1 over five runs: the mean's CI is ±0.196, one run's prediction interval ±0.481; published 87 ± 0.5
@pytest.mark.parametrize("mean, match, verdict", [
    (87.0, AGREES, "agrees"),     # the whole CI inside 86.5..87.5: equivalent at the rounding
    (87.3, AGREES, "agrees"),     # 87.104..87.496 still inside
    (87.4, CONSISTENT, ND),       # the CI pokes out of the band: overlapping is not agreeing
    (87.6, CONSISTENT, ND),       # mean above the band, its CI reaches down into it
    (86.4, CONSISTENT, ND),       # mean below the band, its CI reaches up into it
    (87.8, SPREAD, ND),           # the CI misses the band, one run's spread reaches it
    (86.2, SPREAD, ND),
    (88.2, "disagrees: reproduced 1.2 pp higher, 0.2 pp beyond what run-to-run spread and rounding explain",
     DISAGREES),
    (85.8, "disagrees: reproduced 1.2 pp lower, 0.2 pp beyond what run-to-run spread and rounding explain",
     DISAGREES),
    (89.0, "disagrees: reproduced 2.0 pp higher, 1.0 pp beyond what run-to-run spread and rounding explain",
     DISAGREES),
])
def test_published_agrees_spread_or_disagrees_by_how_much(mean, match, verdict):
    cond = published(mean, 87)
    assert compare_published(cond, "test_acc", 1.0) == _expected(cond, 87, match, verdict)


@pytest.mark.parametrize("p, rounding, match, verdict", [
    (91.0, 2.0, AGREES, "agrees"),  # 91 ± 1 starts exactly at our zero-width 90: the band is closed
    (89.0, 2.0, AGREES, "agrees"),  # 89 ± 1 ends exactly at our 90
    (90.0, 0.0, AGREES, "agrees"),  # a zero-width CI exactly on an unrounded number
    (90.2, 0.4, AGREES, "agrees"),  # 90.0..90.4 holds our exact 90 at its edge
    (91.0, 1.0, "disagrees: reproduced 1.0 pp lower, 0.5 pp beyond what run-to-run spread and rounding explain",
     DISAGREES),
    (89.5, 0.2, "disagrees: reproduced 0.5 pp higher, 0.4 pp beyond what run-to-run spread and rounding explain",
     DISAGREES),
])
def test_published_band_is_the_value_plus_minus_half_the_rounding(p, rounding, match, verdict):
    cond = published(90.0, p, noise=0.0)  # five identical runs: zero-width intervals, exact arithmetic
    assert compare_published(cond, "test_acc", rounding) == PublishedResult(
        cond, p, exact([90.0] * 5), 0.0, 90.0 - p, match, verdict)


def test_steps_are_shown_as_whole_numbers():
    from bn_study.report.cells import number

    assert (number("steps", 21933.2), number("epochs", 2.0), number("val_acc", 97.604)) == ("21933", "2.0", "97.60")
