"""The report's statistics and verdict rule on hand-made numbers whose right answer is obvious."""

from __future__ import annotations

import math

import pytest
from scipy import stats as sps

from bn_study.errors import UserError
from bn_study.report.claims import evaluate, evaluate_part
from bn_study.report.epochs import epochs_to_reach
from bn_study.report.published import AGREES, DISAGREES, SPREAD, compare_published
from bn_study.report.collect import Condition, RunRecord, override_choices
from bn_study.report.load import known_experiments, load_spec, parse_spec
from bn_study.report.spec import BEST, RANGE, ClaimSpec, Comparison
from bn_study.report.stats import (CONTRADICTED, EXCEEDED, INCONCLUSIVE, SUPPORTED, VERDICTS, Difference, Region, Summary,
                                   combine, prediction_half_width, summarize, verdict, welch)

SPREAD5 = (-2.0, -1.0, 0.0, 1.0, 2.0)  # five seeds around a mean


def run(condition: str, seed: int, history: dict[str, dict[int, float]], status: str = "FINISHED") -> RunRecord:
    return RunRecord(run_id=f"{condition}-{seed}", condition=condition, choices=override_choices(condition),
                     seed=seed, status=status, failure=None if status == "FINISHED" else "diverged",
                     history=history)


def condition(key: str, per_epoch: dict[int, float], *, metric: str = "val_acc", noise: float = 0.1,
              statuses: tuple[str, ...] = ("FINISHED",) * 5, published: float | None = None) -> Condition:
    """Five runs whose ``metric`` at each epoch is the given mean plus a symmetric spread of ±2·noise."""
    runs = tuple(run(key, s, {metric: {e: m + d * noise for e, m in per_epoch.items()}}, status)
                 for s, (d, status) in enumerate(zip(SPREAD5, statuses)))
    return Condition(key=key, label=key, choices=override_choices(key), runs=runs, published=published)


# --- intervals ----------------------------------------------------------------------------------------------

def test_t_interval_matches_the_textbook():
    s = summarize([1, 2, 3, 4, 5])
    assert s.n == 5 and s.mean == 3
    assert s.half == pytest.approx(sps.t.ppf(0.975, 4) * math.sqrt(2.5) / math.sqrt(5))
    assert summarize([7.0]).half is None and summarize([]) is None


def test_welch_interval_matches_scipy():
    a, b = [97.1, 97.4, 96.9, 97.3, 97.0], [95.0, 96.1, 95.4, 94.8]
    d = welch(a, b)
    ci = sps.ttest_ind(a, b, equal_var=False).confidence_interval(0.95)
    assert (d.low, d.high) == pytest.approx((ci.low, ci.high))
    assert welch([1.0], [2.0, 3.0]) is None  # no interval from a single run
    assert welch([2.0, 2.0], [1.0, 1.0]) == type(d)(1.0, 1.0, 1.0, math.inf, 0.0, "welch", 4)


def test_summary_reports_the_sample_sd_and_the_interval_ends():
    s = summarize([1, 2, 3, 4, 5])
    half = sps.t.ppf(0.975, 4) * math.sqrt(2.5) / math.sqrt(5)
    assert s.sd == pytest.approx(math.sqrt(2.5))  # n − 1 in the denominator
    assert (s.low, s.high) == pytest.approx((3 - half, 3 + half))
    one = summarize([7.0])
    assert one == Summary(1, 7.0, None, None) and one.low is None and one.high is None


def test_two_values_already_give_an_interval():
    s = summarize([1.0, 4.0])
    sd = math.sqrt(4.5)
    assert (s.n, s.mean, s.sd) == (2, 2.5, pytest.approx(sd))
    assert s.half == pytest.approx(sps.t.ppf(0.975, 1) * sd / math.sqrt(2))


def test_summary_interval_at_another_level():
    s = summarize([1, 2, 3, 4, 5], level=0.90)
    assert s.half == pytest.approx(sps.t.ppf(0.95, 4) * math.sqrt(2.5) / math.sqrt(5))


def test_prediction_interval_for_one_more_run_matches_the_textbook():
    s = summarize([1, 2, 3, 4, 5])
    # t(n − 1) · sd · √(1 + 1/n)
    assert prediction_half_width(s) == pytest.approx(sps.t.ppf(0.975, 4) * math.sqrt(2.5) * math.sqrt(1.2))
    assert prediction_half_width(s, level=0.90) == pytest.approx(sps.t.ppf(0.95, 4) * math.sqrt(2.5) * math.sqrt(1.2))
    assert prediction_half_width(summarize([7.0])) is None  # one run: no spread to predict from


def test_welch_degrees_of_freedom_and_level_match_scipy():
    a, b = [97.1, 97.4, 96.9, 97.3, 97.0], [95.0, 96.1, 95.4, 94.8]
    ref = sps.ttest_ind(a, b, equal_var=False)
    d = welch(a, b)
    assert d.estimate == pytest.approx(97.14 - 95.325) and d.df == pytest.approx(ref.df)
    ci90 = ref.confidence_interval(0.90)
    d90 = welch(a, b, level=0.90)
    assert (d90.estimate, d90.low, d90.high, d90.df) == pytest.approx((d.estimate, ci90.low, ci90.high, ref.df))
    flipped = welch(b, a)  # mean(a) − mean(b): the order of the arms is the sign of the effect
    assert (flipped.estimate, flipped.low, flipped.high) == pytest.approx((-d.estimate, -d.high, -d.low))


@pytest.mark.parametrize("a, b", [([], [1.0, 2.0]), ([1.0, 2.0], []), ([1.0], [1.0, 2.0]), ([1.0, 2.0], [1.0])])
def test_welch_needs_two_values_in_each_arm(a, b):
    assert welch(a, b) is None


def test_identical_arms_give_an_exact_difference():
    assert welch([3.0, 3.0, 3.0], [1.0, 1.0]) == Difference(2.0, 2.0, 2.0, math.inf, 0.0, "welch", 5)


# --- the verdict rule -------------------------------------------------------------------------------------

BETTER = Region(0.0, math.inf)
A_LOT = Region(5.0, math.inf)
A_LITTLE = Region(0.0, 5.0, high_open=False)
NOT_BETTER = Region(-math.inf, 0.5, high_open=False, above=CONTRADICTED)
EQUIVALENT = Region(-0.5, 0.5, low_open=False, high_open=False)


@pytest.mark.parametrize("ci, region, expected", [
    ((2.0, 4.0), BETTER, SUPPORTED),          # clearly better
    ((-4.0, -2.0), BETTER, CONTRADICTED),     # clearly worse
    ((-1.0, 3.0), BETTER, INCONCLUSIVE),      # overlaps 0
    ((0.0, 0.0), BETTER, CONTRADICTED),       # exactly no effect is not "better"
    ((6.0, 9.0), A_LOT, SUPPORTED),
    ((1.0, 3.0), A_LOT, CONTRADICTED),        # real but smaller than "a lot"
    ((3.0, 7.0), A_LOT, INCONCLUSIVE),
    ((1.0, 3.0), A_LITTLE, SUPPORTED),
    ((6.0, 9.0), A_LITTLE, EXCEEDED),         # a lot, not a little
    ((-1.0, 3.0), A_LITTLE, INCONCLUSIVE),
    ((-1.0, 0.3), NOT_BETTER, SUPPORTED),
    ((0.6, 2.0), NOT_BETTER, CONTRADICTED),   # A is better after all
    ((0.0, 1.0), NOT_BETTER, INCONCLUSIVE),
    ((-0.3, 0.4), EQUIVALENT, SUPPORTED),     # CI inside ± margin
    ((0.6, 1.2), EQUIVALENT, EXCEEDED),       # CI entirely above: A is better than "as good"
    ((-1.5, -0.7), EQUIVALENT, CONTRADICTED),
    ((0.2, 0.8), EQUIVALENT, INCONCLUSIVE),   # straddles the margin
    ((-0.8, 0.8), EQUIVALENT, INCONCLUSIVE),  # too wide to tell
])
def test_region_rule(ci, region, expected):
    assert verdict(*ci, region) == expected


@pytest.mark.parametrize("ci, region, expected", [
    # a CI ending exactly on a bound: inside when that end of the region is closed, outside when open
    ((0.0, 1.0), Region(0.0, math.inf, low_open=True), INCONCLUSIVE),
    ((0.0, 1.0), Region(0.0, math.inf, low_open=False), SUPPORTED),
    ((1.0, 5.0), Region(0.0, 5.0, high_open=True), INCONCLUSIVE),
    ((1.0, 5.0), Region(0.0, 5.0, high_open=False), SUPPORTED),
    # a CI touching a bound from outside: it misses an open end, it meets a closed one
    ((-1.0, 0.0), Region(0.0, math.inf, low_open=True), CONTRADICTED),
    ((-1.0, 0.0), Region(0.0, math.inf, low_open=False), INCONCLUSIVE),
    ((5.0, 6.0), Region(0.0, 5.0, high_open=True), EXCEEDED),
    ((5.0, 6.0), Region(0.0, 5.0, high_open=False), INCONCLUSIVE),
    ((5.0, 6.0), Region(-math.inf, 5.0, high_open=True, above=CONTRADICTED), CONTRADICTED),
    ((5.0, 6.0), Region(-math.inf, 5.0, high_open=False), INCONCLUSIVE),
])
def test_region_ends_open_or_closed(ci, region, expected):
    assert verdict(*ci, region) == expected


def test_verdict_words():
    assert VERDICTS == (SUPPORTED, CONTRADICTED, EXCEEDED, INCONCLUSIVE) == (
        "supported", "contradicted", "exceeded", "inconclusive")


@pytest.mark.parametrize("region, unit, text", [
    (Region(), " pp", "any value"),
    (Region(0.0, math.inf), " pp", "> 0 pp"),
    (Region(0.5, math.inf, low_open=False), "", "≥ 0.5"),
    (Region(-math.inf, 0.5), " pp", "< 0.5 pp"),
    (Region(-math.inf, 0.5, high_open=False), " pp", "≤ 0.5 pp"),
    (Region(0.0, 5.0, high_open=False), " pp", "in (0, 5] pp"),
    (Region(-1.0, 1.0, low_open=False, high_open=False), " pp", "in [-1, 1] pp"),
    (Region(-1.0, 1.0, low_open=False, high_open=True), "", "in [-1, 1)"),
])
def test_region_reads_as_text(region, unit, text):
    assert region.describe(unit) == text


def test_region_text_has_no_unit_by_default():
    assert Region(0.0, math.inf).describe() == "> 0"
    assert Region(-1.0, 1.0, low_open=True, high_open=False).describe() == "in (-1, 1]"


def test_all_of_needs_every_part():
    assert combine([SUPPORTED, SUPPORTED]) == SUPPORTED
    assert combine([SUPPORTED, INCONCLUSIVE]) == INCONCLUSIVE
    assert combine([SUPPORTED, INCONCLUSIVE, CONTRADICTED]) == CONTRADICTED
    assert combine([EXCEEDED, CONTRADICTED]) == CONTRADICTED  # a contradicted part outweighs an exceeded one
    assert combine([SUPPORTED, EXCEEDED, INCONCLUSIVE]) == EXCEEDED
    assert combine([]) == INCONCLUSIVE
    assert combine([CONTRADICTED]) == CONTRADICTED and combine([SUPPORTED]) == SUPPORTED
    assert combine([INCONCLUSIVE, INCONCLUSIVE]) == INCONCLUSIVE


def test_comparison_regions_from_config():
    assert Comparison("better", {}, {}).region() == BETTER
    assert Comparison("better", {}, {}, min_effect=5).region() == A_LOT
    assert Comparison("better", {}, {}, max_effect=5).region() == A_LITTLE
    assert Comparison("not_better", {}, {}, margin=0.5).region() == NOT_BETTER
    assert Comparison("equivalent", {}, {}, margin=0.5).region() == EQUIVALENT


# --- claims on conditions -----------------------------------------------------------------------------

BN = "act=sigmoid norm=bn1"
NONE = "act=sigmoid norm=none"
SEL_BN, SEL_NONE = {"act": "sigmoid", "norm": "bn1"}, {"act": "sigmoid", "norm": "none"}


def test_clearly_better_worse_and_overlapping():
    conds = [condition(BN, {1: 92.0, 2: 95.0}), condition(NONE, {1: 11.0, 2: 94.9})]
    better = Comparison("better", SEL_BN, SEL_NONE, metric="val_acc", epoch=1, min_effect=5)
    part = evaluate_part(better, conds)
    assert part.verdict == SUPPORTED and part.effect.estimate == pytest.approx(81.0)
    assert part.a_summary.n == part.b_summary.n == 5
    worse = Comparison("better", SEL_NONE, SEL_BN, metric="val_acc", epoch=1)
    assert evaluate_part(worse, conds).verdict == CONTRADICTED
    overlapping = Comparison("better", SEL_BN, SEL_NONE, metric="val_acc", epoch=2)  # 95.0 vs 94.9 ± 0.2
    assert evaluate_part(overlapping, conds).verdict == INCONCLUSIVE
    same = Comparison("equivalent", SEL_BN, SEL_NONE, metric="val_acc", epoch=2, margin=0.5)
    assert evaluate_part(same, conds).verdict == SUPPORTED
    last = Comparison("equivalent", SEL_BN, SEL_NONE, metric="val_acc", epoch=None, margin=0.5)
    assert evaluate_part(last, conds).verdict == SUPPORTED  # "last" = epoch 2 here


def test_lower_loss_is_better():
    conds = [condition(BN, {3: 0.10}, metric="train_loss", noise=0.001),
             condition(NONE, {3: 2.30}, metric="train_loss", noise=0.001)]
    part = evaluate_part(Comparison("better", SEL_BN, SEL_NONE, metric="train_loss"), conds)
    assert part.verdict == SUPPORTED and part.effect.estimate == pytest.approx(2.2)


def test_faster_counts_runs_that_never_arrive():
    conds = [condition(BN, {1: 91.0, 2: 95.0, 3: 96.0}, noise=0.0), condition(NONE, {1: 11.0, 2: 50.0, 3: 80.0}, noise=0.0)]
    assert epochs_to_reach(conds[0].runs[0], "val_acc", 90) == 1
    assert epochs_to_reach(conds[1].runs[0], "val_acc", 90) is None
    part = evaluate_part(Comparison("faster", SEL_BN, SEL_NONE, metric="val_acc", threshold=90), conds)
    assert part.verdict == SUPPORTED and part.effect.estimate == pytest.approx(3.0)  # 1 vs "4" (never, 3 epochs)
    assert any("never reached" in n for n in part.notes)
    # neither gets there: "no faster" would only be an artefact of stopping at epoch 3
    both_slow = [condition(BN, {1: 50.0, 2: 60.0, 3: 70.0}, noise=0.0), conds[1]]
    part = evaluate_part(Comparison("faster", SEL_BN, SEL_NONE, metric="val_acc", threshold=90), both_slow)
    assert part.effect.estimate == 0.0 and part.verdict == INCONCLUSIVE
    assert part.p[CONTRADICTED] == 1.0 and part.withheld == (CONTRADICTED, EXCEEDED, SUPPORTED)
    # B arrives at epoch 1, A never: clearly not faster, whatever A would have done later
    part = evaluate_part(Comparison("faster", SEL_NONE, SEL_BN, metric="val_acc", threshold=90), conds)
    assert part.verdict == CONTRADICTED


def test_missing_ambiguous_and_too_few_runs_are_inconclusive():
    conds = [condition(BN, {1: 92.0}), condition(NONE, {1: 11.0})]
    missing = evaluate_part(Comparison("better", {"act": "relu", "norm": "bn1"}, SEL_NONE, epoch=1), conds)
    assert missing.verdict == INCONCLUSIVE and "no condition" in missing.notes[0]
    ambiguous = evaluate_part(Comparison("better", {"act": "sigmoid"}, SEL_NONE, epoch=1), conds)
    assert ambiguous.verdict == INCONCLUSIVE and "matches 2 conditions" in ambiguous.notes[0]
    diverged = [condition(BN, {1: 92.0}, statuses=("FINISHED",) + ("FAILED",) * 4), condition(NONE, {1: 11.0})]
    few = evaluate_part(Comparison("better", SEL_BN, SEL_NONE, epoch=1), diverged)
    assert few.verdict == INCONCLUSIVE
    assert any("4 of 5 runs did not finish" in n for n in few.notes)
    assert any("at least 2 finished runs" in n for n in few.notes)
    no_epoch = evaluate_part(Comparison("better", SEL_BN, SEL_NONE, epoch=7), conds)
    assert no_epoch.verdict == INCONCLUSIVE


def test_failed_runs_are_left_out_but_said():
    conds = [condition(BN, {1: 92.0}, statuses=("FINISHED",) * 4 + ("FAILED",)), condition(NONE, {1: 11.0})]
    part = evaluate_part(Comparison("better", SEL_BN, SEL_NONE, epoch=1), conds)
    assert part.verdict == SUPPORTED and part.a_summary.n == 4
    assert any("1 of 5 runs did not finish" in n for n in part.notes)


def test_claim_with_parts():
    conds = [condition(BN, {1: 92.0}), condition(NONE, {1: 11.0})]
    claim = ClaimSpec("x", "both", (Comparison("better", SEL_BN, SEL_NONE, epoch=1),
                                     Comparison("equivalent", SEL_BN, SEL_NONE, epoch=1, margin=1.0)))
    result = evaluate(claim, conds)
    assert [p.verdict for p in result.parts] == [SUPPORTED, EXCEEDED] and result.verdict == EXCEEDED


# --- published single runs ----------------------------------------------------------------------------

def test_published_agrees_spread_or_disagrees():
    # mean 86.8, tiny spread: 87 ± 0.5 overlaps the mean's CI
    agrees = compare_published(condition("v=a", {3: 86.8}, metric="test_acc", noise=0.05, published=87), "test_acc", 1.0)
    assert agrees.match == AGREES and agrees.verdict == "agrees"
    # mean 90.2 ± small CI misses 90.5..91.5, but one run could land there (wide run-to-run spread)
    spread = compare_published(condition("v=b", {3: 90.0}, metric="test_acc", noise=0.25, published=91),
                               "test_acc", 1.0)
    assert spread.match == SPREAD and spread.verdict == "not distinguishable"
    off = compare_published(condition("v=c", {3: 88.0}, metric="test_acc", noise=0.1, published=91), "test_acc", 1.0)
    assert off.verdict == DISAGREES and off.match.startswith("disagrees: reproduced 3.0 pp lower")
    assert compare_published(condition("v=d", {3: 90.0}, metric="test_acc"), "test_acc", 1.0) is None  # not published


# --- the configuration --------------------------------------------------------------------------------

def test_bad_claims_are_user_errors():
    with pytest.raises(UserError, match="must be one of"):
        parse_spec("x", {"claims": [{"text": "t", "test": "bigger", "a": {"a": 1}, "b": {"a": 2}}]})
    with pytest.raises(UserError, match="margin"):
        parse_spec("x", {"claims": [{"text": "t", "test": "equivalent", "a": {"a": 1}, "b": {"a": 2}}]})
    with pytest.raises(UserError, match="non-empty mapping"):
        parse_spec("x", {"claims": [{"text": "t", "test": "better", "a": {}, "b": {"a": 2}}]})
    with pytest.raises(UserError, match="unknown keys"):
        parse_spec("x", {"claims": [{"text": "t", "test": "better", "a": {"a": 1}, "b": {"a": 2}, "epochs": 3}]})
    with pytest.raises(UserError, match=r"report.published.rounding must be 0 or more \(points the numbers were "
                                         r"rounded to\), not -1."):
        parse_spec("x", {"published": {"rounding": -1}})
    assert parse_spec("x", {"published": {"rounding": 0}}).published_rounding == 0.0

    faster = {"text": "t", "test": "faster", "a": {"a": 1}, "b": {"a": 2}, "threshold": 90}
    assert parse_spec("x", {"claims": [{**faster, "by": "steps"}]}).claims[0].parts[0].by == "steps"
    with pytest.raises(UserError, match=r"claims\[0\].by must be one of epochs, steps, not 'minutes'"):
        parse_spec("x", {"claims": [{**faster, "by": "minutes"}]})
    with pytest.raises(UserError, match=r"claims\[0\].by is read only by a 'faster' test"):
        parse_spec("x", {"claims": [{**faster, "test": "better", "by": "steps"}]})
    with pytest.raises(UserError, match=r"threshold.by must be one of epochs, steps, not 'hours'"):
        parse_spec("x", {"threshold": {"by": ["epochs", "hours"]}})
    assert parse_spec("x", {"threshold": {"by": "steps"}}).threshold_by == ("steps",)
    with pytest.raises(UserError, match=r"figures\[0\].x is read only by a 'curves' figure"):
        parse_spec("x", {"figures": [{"name": "f", "kind": "published", "x": "steps"}]})
    assert parse_spec("x", {"figures": [{"name": "f", "x": "steps"}]}).figures[0].x == "steps"


@pytest.mark.parametrize("name", [n for n in known_experiments() if load_spec(n).claims])
def test_every_configured_claim_names_conditions_of_its_sweep(name):
    """A typo in a claim's selector would make it silently inconclusive forever; catch it here."""
    spec = load_spec(name)
    selectors = [(s, p.over) for c in spec.claims for p in c.parts for s in (p.a, p.b)]
    selectors += [(c.select, None) for c in spec.conditions] + [(s, None) for f in spec.figures for s in f.select]
    for sel, over in selectors:
        for key, value in sel.items():
            assert key in spec.sweep_order, (name, sel)
            # the swept parameter's best (or wider_range's range) is built from the arm's grid
            assert value in spec.sweep_order[key] or (key == over and value in (BEST, RANGE)), (name, sel)
