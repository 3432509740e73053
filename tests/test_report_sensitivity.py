"""A parameter swept per arm (report.sensitivity): arms, each arm's best value and the values not distinguishable
from it, the leave-one-seed-out ``best`` condition, each seed's range of good values, ``at_every`` and
``wider_range`` claims — numbers checked against hand computations on hand-made runs; then the shipped
lr_sensitivity study end to end on real MNIST, tiny, through the real entry point."""

from __future__ import annotations

import math
import re

import pytest
from scipy import stats as sps

from bn_study.errors import UserError
from bn_study.report.claims import evaluate, evaluate_part
from bn_study.report.collect import Condition, override_choices
from bn_study.report.load import parse_spec
from bn_study.report.sensitivity import arm_summaries, arms, best_condition, good_flags, good_ranges, range_grain
from bn_study.report.spec import Comparison, SensitivitySpec
from bn_study.report.stats import CONTRADICTED, INCONCLUSIVE, PAIRED, SUPPORTED
from test_report_stats import run

LR = "optimizer.lr"


def grid(arm: str, values: dict[str, list[float]], statuses: dict[str, list[str]] | None = None,
         epoch: int = 1) -> list[Condition]:
    """One condition per lr: ``values[lr][seed]`` is that seed's val_acc at ``epoch``."""
    out = []
    for lr, per_seed in values.items():
        key = f"{arm} {LR}={lr}"
        states = (statuses or {}).get(lr, ["FINISHED"] * len(per_seed))
        runs = tuple(run(key, s, {"val_acc": {epoch: v}} if st == "FINISHED" else {}, st)
                     for s, (v, st) in enumerate(zip(per_seed, states)))
        out.append(Condition(key=key, label=key, choices=override_choices(key), runs=runs))
    return out


def test_arms_group_the_grid_by_every_other_setting_in_lr_order():
    conds = grid("act=relu norm=bn1", {"0.1": [1, 1], "0.01": [2, 2]}) + grid("act=relu norm=none", {"1.0": [3, 3]})
    found = arms(conds, LR)
    assert [a.choices for a in found] == [{"act": "relu", "norm": "bn1"}, {"act": "relu", "norm": "none"}]
    assert found[0].values == (0.01, 0.1) and found[1].values == (1.0,)


def test_an_arm_at_the_defaults_is_labelled_by_its_values_in_the_conditions_order():
    # a condition names only what differs from the defaults (act=sigmoid, norm=none), act before norm; its
    # runs still have every value, and the arm at the defaults names both
    conds = []
    for act, norm in (("sigmoid", "none"), ("sigmoid", "bn1"), ("relu", "none"), ("relu", "bn1")):
        named = " ".join(t for t, default in ((f"act={act}", act == "sigmoid"), (f"norm={norm}", norm == "none"))
                         if not default)
        [c] = grid(named, {"0.1": [1, 1]})
        conds.append(Condition(key=c.key, label=c.label, choices={"norm": norm, "act": act, LR: "0.1"}, runs=c.runs))
    assert [a.label for a in arms(conds, LR)] == ["act=sigmoid norm=none", "act=sigmoid norm=bn1",
                                                  "act=relu norm=none", "act=relu norm=bn1"]


def test_the_best_value_is_chosen_for_each_seed_by_the_other_seeds():
    # lr 1 looks best to seeds 0 and 2 only because of seed 0's lucky 99: left out, seed 0 sees 0.1 as best
    conds = grid("act=sigmoid norm=bn1", {"0.1": [90.0, 90.0, 90.0], "1.0": [99.0, 84.0, 84.0]})
    [arm] = arms(conds, LR)
    best = best_condition(arm, "act=sigmoid norm=bn1", LR, "val_acc", 1, conds)
    # seed 0: others at 1.0 = 84 < 90 → 0.1; seed 1: others at 1.0 = (99 + 84)/2 = 91.5 > 90 → 1.0; seed 2 the same
    assert [(r.seed, r.choices[LR]) for r in best.runs] == [(0, "0.1"), (1, "1.0"), (2, "1.0")]
    assert [r.value("val_acc", 1) for r in best.runs] == [90.0, 84.0, 84.0]
    assert best.choices[LR] == "best" and "0.1, 1" in best.label


def test_a_claim_at_each_arms_best_lr_is_the_paired_t_over_the_chosen_runs():
    conds = (grid("act=sigmoid norm=bn1", {"0.1": [90.0, 91.0, 92.0], "1.0": [80.0, 80.0, 80.0]})
             + grid("act=sigmoid norm=none", {"0.1": [70.0, 70.0, 70.0], "1.0": [85.0, 86.0, 88.0]}))
    comp = Comparison("better", {"act": "sigmoid", "norm": "bn1", LR: "best"},
                      {"act": "sigmoid", "norm": "none", LR: "best"}, epoch=1, analysis=PAIRED, over=LR)
    part = evaluate_part(comp, conds)
    diffs = [90.0 - 85.0, 91.0 - 86.0, 92.0 - 88.0]  # bn1 at 0.1, none at 1.0, for every seed
    mean = sum(diffs) / 3
    sd = math.sqrt(sum((d - mean) ** 2 for d in diffs) / 2)
    half = sps.t.ppf(0.975, 2) * sd / math.sqrt(3)
    assert part.effect.estimate == pytest.approx(mean)
    assert (part.effect.low, part.effect.high) == pytest.approx((mean - half, mean + half))
    assert part.verdict == SUPPORTED


def test_a_failed_run_counts_at_chance_when_the_best_value_is_chosen():
    # lr 1.0 has the higher mean over its finished runs, but one of three diverged: at chance (10 %) it loses
    conds = grid("act=relu norm=none", {"0.1": [95.0, 95.0, 95.0], "1.0": [97.0, 97.0, 0.0]},
                 statuses={"1.0": ["FINISHED", "FINISHED", "FAILED"]})
    [summary] = arm_summaries(conds, SensitivitySpec(LR), 1, PAIRED)
    assert summary.best == 0.1 and summary.failed == (0, 1)
    assert summary.summaries[1].n == 2 and summary.summaries[1].mean == 97.0  # the table: finished runs


def test_values_not_distinguishable_from_the_best_are_those_whose_paired_interval_covers_zero():
    conds = grid("act=relu norm=bn1", {"0.01": [90.0, 91.0, 92.0], "0.1": [97.0, 97.5, 98.0],
                                       "1.0": [96.0, 98.5, 97.0]})
    [summary] = arm_summaries(conds, SensitivitySpec(LR), 1, PAIRED)
    assert summary.best == 0.1
    assert summary.tied == (1.0,)  # differences 1, -1, 1: the interval covers 0; 0.01 is clearly worse


def test_a_seeds_good_range_is_its_share_of_the_log_axis_that_reaches_the_threshold():
    conds = grid("act=relu norm=bn1", {"0.01": [96.0, 90.0], "0.1": [97.0, 97.0], "1.0": [96.5, 50.0],
                                       "10.0": [20.0, 20.0]}, epoch=5)
    [arm] = arms(conds, LR)
    # a grid a decade apart: every value counts for one decade (an end value mirrors its single gap)
    assert good_ranges(arm, good_flags(arm, "val_acc", None, 96.0)) == {0: 3.0, 1: 1.0}
    uneven = grid("act=relu norm=bn1", {"0.001": [99.0], "0.01": [99.0], "1.0": [0.0]})
    [arm] = arms(uneven, LR)
    # widths: 0.001 → 1 (its one gap), 0.01 → (1 + 2)/2, 1.0 → 2
    assert good_ranges(arm, good_flags(arm, "val_acc", None, 96.0)) == {0: 1.0 + 1.5}
    # its one edge lies between 0.01 and 1.0 and is counted midway: off by up to half that gap, a decade
    assert range_grain(arm, good_flags(arm, "val_acc", None, 96.0)) == pytest.approx(1.0)
    [arm] = arms(conds, LR)
    # seed 1: two edges, half a decade each
    assert range_grain(arm, good_flags(arm, "val_acc", None, 96.0)) == pytest.approx(1.0)


def test_a_wider_range_claim_compares_the_seeds_ranges_in_pairs():
    conds = (grid("act=sigmoid norm=bn1", {"0.01": [97.0, 97.0, 97.0], "0.1": [97.0, 97.0, 97.0],
                                           "1.0": [97.0, 90.0, 97.0]})
             + grid("act=sigmoid norm=none", {"0.01": [90.0, 90.0, 90.0], "0.1": [97.0, 97.0, 97.0],
                                              "1.0": [90.0, 90.0, 90.0]}))
    comp = Comparison("wider_range", {"act": "sigmoid", "norm": "bn1", LR: "range"},
                      {"act": "sigmoid", "norm": "none", LR: "range"}, threshold=96.0, analysis=PAIRED, over=LR)
    part = evaluate_part(comp, conds)
    # bn1's seeds reach 96 at 3, 2 and 3 grid values a decade apart; none's at 1 each
    assert [v for v in (part.a_summary.mean, part.b_summary.mean)] == pytest.approx([8 / 3, 1.0])
    assert part.effect.estimate == pytest.approx(5 / 3)  # seed gains: 2, 1, 2 decades
    # each range is known only to the grid: bn1's seed 1 has one edge (half a decade off at most), none's
    # seeds two (a decade): the paired interval is widened by 0.5 + 1.0 each way, its ends excluded
    half = sps.t.ppf(0.975, 2) * math.sqrt(1 / 3) / math.sqrt(3)
    assert part.effect.open_ends and part.effect.slack == pytest.approx((1.5, 1.5))
    assert (part.effect.low, part.effect.high) == pytest.approx((5 / 3 - half - 1.5, 5 / 3 + half + 1.5))
    assert part.verdict == INCONCLUSIVE  # 5/3 ± 1.43 alone would be "supported": the grid cannot tell
    # on a grid a tenth of a decade apart the same story is decided: widened by 0.05 + 0.1 only
    fine = [f"{10 ** (k / 10):.6g}" for k in range(11)]
    conds = (grid("act=sigmoid norm=bn1", {lr: [97.0, 90.0 if k == 10 else 97.0, 97.0] for k, lr in enumerate(fine)})
             + grid("act=sigmoid norm=none", {lr: [97.0 if k == 5 else 90.0] * 3 for k, lr in enumerate(fine)}))
    part = evaluate_part(comp, conds)
    assert part.effect.estimate == pytest.approx((1.0 + 0.9 + 1.0) / 3, rel=1e-5)  # lrs to 6 digits
    assert part.effect.slack == pytest.approx((0.15, 0.15), rel=1e-5)
    assert part.effect.low == pytest.approx(2.9 / 3 - half * 0.1 - 0.15, rel=1e-4) and part.verdict == SUPPORTED


RAW = {
    "sensitivity": {"param": LR, "good": 96},
    "claims": [
        {"text": "better at every lr", "test": "better", "at_every": LR, "a": {"norm": "bn1"}, "b": {"norm": "none"}},
        {"text": "at two lrs", "test": "better", "at_every": {LR: [0.01, 0.1]}, "a": {"norm": "bn1"},
         "b": {"norm": "none"}},
        {"text": "wider", "test": "wider_range", "a": {"norm": "bn1"}, "b": {"norm": "none"}},
    ],
}


def test_at_every_makes_one_part_per_value_and_wider_range_takes_the_sections_threshold():
    spec = parse_spec("x", RAW, {LR: ("0.001", "0.01", "1.0")})
    every, two, wider = spec.claims
    assert [p.a for p in every.parts] == [{"norm": "bn1", LR: v} for v in ("0.001", "0.01", "1.0")]
    assert [p.b[LR] for p in two.parts] == ["0.01", "0.1"]
    [part] = wider.parts
    assert part.threshold == 96.0 and part.over == LR and part.a == {"norm": "bn1", LR: "range"}


def test_an_at_every_claim_holds_only_if_it_holds_at_every_value():
    spec = parse_spec("x", {"claims": [RAW["claims"][0]]}, {LR: ("0.01", "0.1")})
    ahead = grid("norm=bn1", {"0.01": [95.0, 96.0, 97.0], "0.1": [80.0, 81.0, 82.0]})
    behind = grid("norm=none", {"0.01": [50.0, 51.0, 53.0], "0.1": [90.0, 90.0, 91.0]})
    result = evaluate(spec.claims[0], ahead + behind)
    assert [p.verdict for p in result.parts] == [SUPPORTED, CONTRADICTED]
    assert result.verdict == CONTRADICTED


@pytest.mark.parametrize("raw, fragment", [
    ({"claims": [{"text": "t", "test": "better", "a": {"norm": "bn1", LR: "best"}, "b": {"norm": "none"}}]},
     "needs report.sensitivity"),
    ({"claims": [{"text": "t", "test": "wider_range", "a": {"norm": "bn1"}, "b": {"norm": "none"}}]},
     "claims[0].threshold is required for a 'wider_range' test"),
    ({"claims": [{"text": "t", "test": "better", "at_every": "batch_size", "a": {"norm": "bn1"},
                  "b": {"norm": "none"}}]}, "claims[0].at_every names 'batch_size'"),
    ({"sensitivity": {"metric": "val_acc"}}, "report.sensitivity must be a mapping with `param`"),
    ({"figures": [{"name": "lr", "kind": "sensitivity"}]}, "needs report.sensitivity"),
])
def test_a_wrong_sensitivity_setting_is_one_sentence(raw, fragment):
    with pytest.raises(UserError, match=re.escape(fragment)):
        parse_spec("x", raw, {LR: ("0.01", "0.1")})


# --- the shipped study, tiny, through the real entry point ----------------------------------------------------

SWEEP = ("-m", "+experiment=lr_sensitivity", "act=relu", "optimizer.lr=0.003,0.1", "seeds=[0,1]", "epochs=1",
         "data.limit_train=1000", "probe.samples=100", "tracking.figures=false", "threads=1")


def test_the_lr_sensitivity_study_runs_and_reports_its_arms(cli, tmp_path, runs_in, monkeypatch, capsys):
    from bn_study.report.__main__ import main as report_main

    swept = cli(*SWEEP)
    assert swept.code == 0, swept.err[-3000:]
    _, runs = runs_in(tmp_path, "lr_sensitivity")
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(children) == 8 and all(r.info.status == "FINISHED" for r in children)
    monkeypatch.chdir(tmp_path)
    assert report_main(["lr_sensitivity", "--out", "reports", "--no-artifacts"]) == 0, capsys.readouterr().err
    text = (tmp_path / "reports" / "lr_sensitivity" / "README.md").read_text(encoding="utf-8")
    section = text[text.index("## Sensitivity to optimizer.lr"):text.index("## Final metrics")]
    # one row per arm, per epoch table; every grid value a column
    for arm in ("norm=none", "norm=bn1"):  # act=relu is every job's, so no part of an arm's label
        assert section.count(f"| {arm} | **") == 2, section
    assert "| 0.003 | 0.1 |" in section
    acc = {(r.data.params["norm.kind"], r.data.params["optimizer.lr"], r.data.tags["seed"]): 100 * r.data.metrics["val_acc"]
           for r in children}
    for kind, arm in (("none", "norm=none"), ("batch", "norm=bn1")):
        means = {lr: (acc[(kind, lr, "0")] + acc[(kind, lr, "1")]) / 2 for lr in ("0.003", "0.1")}
        best = max(means, key=means.get)
        assert f"| {arm} | **{float(best):g}** |" in section
    assert (tmp_path / "reports" / "lr_sensitivity" / "lr_sensitivity.png").stat().st_size > 1000
    # the relu claims have their conditions; the sigmoid ones say they did not run
    assert "At each arm's own best lr, BN still speeds up relu convergence" in text
    assert "best optimizer.lr (" in text
