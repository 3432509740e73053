"""What a report's figures and tables promise a reader (issue 11, items 6 and 7): one colour per value of each
factor in every report, written once in reports/README.md and named truly in captions; legends whose lines
show the line style; bands inside the metric's range; whole-epoch ticks; the probe's shares as fractions
under honest names (old runs' ``actN_dead`` still read); one loss kind per table column; one name for each
test-set metric; and ``faster`` effects with runs that never got there shown as bounds, never as an
interval that looks exact."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib import pyplot as plt  # noqa: E402

from bn_study.report import colours, figures  # noqa: E402
from bn_study.report.build import _figure_caption  # noqa: E402
from bn_study.report.claims import evaluate_part  # noqa: E402
from bn_study.report.claims_table import claims_table, effect_cell  # noqa: E402
from bn_study.report.collect import Condition, override_choices  # noqa: E402
from bn_study.report.names import metric_bounds, metric_title  # noqa: E402
from bn_study.report.render import _final_table, index_readme  # noqa: E402
from bn_study.report.spec import ClaimSpec, Comparison, FigureSpec, ReportSpec  # noqa: E402
from bn_study.report.claims import evaluate  # noqa: E402
from test_report_stats import run  # noqa: E402

SPREAD = (-2.0, -1.0, 0.0, 1.0, 2.0)


def cond(key: str, history_of_seed, choices: dict[str, str] | None = None, label: str | None = None) -> Condition:
    """Five seeds; ``history_of_seed(offset)`` → that seed's metric histories."""
    runs = tuple(run(key, s, history_of_seed(d)) for s, d in enumerate(SPREAD))
    return Condition(key=key, label=label or key, choices={**override_choices(key), **(choices or {})}, runs=runs)


def curves_of(key: str, acc: float = 90.0, loss: float = 0.3, noise: float = 0.0, epochs: int = 3, **kw) -> Condition:
    return cond(key, lambda d: {"val_acc": {e: acc + d * noise for e in range(1, epochs + 1)},
                                "val_loss": {e: loss + d * noise for e in range(1, epochs + 1)},
                                "train_loss": {e: loss + d * noise for e in range(1, epochs + 1)}}, **kw)


def curves_figure(conds, color_by=None, style_by=None, metrics=("train_loss", "val_loss", "val_acc")):
    spec = FigureSpec("curves", metrics=tuple(metrics))
    return figures.curves(spec, conds, colours.palette(conds, color_by), colours.line_styles(conds, style_by),
                          "t", val_is_test=True)


def plotted(fig) -> dict[str, tuple[str, str]]:
    """Every line drawn with a label: label → (colour, line style)."""
    return {ln.get_label(): (matplotlib.colors.to_hex(ln.get_color()), ln.get_linestyle())
            for ax in fig.axes for ln in ax.get_lines() if not ln.get_label().startswith("_")}


# --- one colour per value of each factor, in every report --------------------------------------------------

def test_a_value_has_the_same_colour_in_every_report_whatever_else_the_report_holds():
    one = [curves_of("norm=bn1"), curves_of("norm=bn4")]
    other = [curves_of("norm=none"), curves_of("norm=bn2"), curves_of("norm=bn4"), curves_of("norm=bn1")]
    a, b = colours.palette(one, "norm"), colours.palette(other, "norm")
    assert a["norm=bn4"] == b["norm=bn4"] == colours.FACTOR_COLOURS["norm"]["bn4"][0]
    assert a["norm=bn1"] == b["norm=bn1"] == colours.FACTOR_COLOURS["norm"]["bn1"][0]
    # and the figures draw those colours
    fig = curves_figure(one, color_by="norm")
    assert plotted(fig)["norm=bn4"][0] == colours.FACTOR_COLOURS["norm"]["bn4"][0]
    plt.close(fig)
    # batch sizes, optimizers: the same rule (the article's batch study and its Adam study)
    batches = [curves_of(f"batch_size={b} norm=none") for b in (1024, 4)]
    assert colours.palette(batches, "batch_size")["batch_size=4 norm=none"] == colours.BATCH_SIZES["4"][0]
    opt = [curves_of("optimizer=adam_keras"), curves_of("optimizer=sgd")]
    assert colours.palette(opt, "optimizer")["optimizer=sgd"] == colours.FACTOR_COLOURS["optimizer"]["sgd"][0]


def test_values_outside_the_table_get_colours_no_listed_value_of_the_figure_has():
    conds = [curves_of("norm=bn1"), curves_of("norm=mine"), curves_of("norm=yours")]
    p = colours.palette(conds, "norm")
    assert len(set(p.values())) == 3 and p["norm=bn1"] == colours.FACTOR_COLOURS["norm"]["bn1"][0]
    sentence = colours.colour_sentence(conds, "norm")
    assert "bn1 orange" in sentence and "mine, yours: colours of this report only" in sentence
    assert "this report only" in colours.colour_sentence(conds, None)


def test_the_batch_size_table_is_the_documented_scale():
    for batch, (hex_, _) in colours.BATCH_SIZES.items():
        assert colours.scale_hex(int(batch)) == hex_, batch
    for factor, values in colours.FACTOR_COLOURS.items():
        assert len({h for h, _ in values.values()}) == len(values), factor  # one colour per value


def test_the_index_writes_the_colour_table_and_the_naming_rule_once(tmp_path):
    text = index_readme(tmp_path)
    for factor, values in colours.FACTOR_COLOURS.items():
        for value, (hex_, name) in values.items():
            assert f"| `{factor}` | `{value}` | {name} (`{hex_}`) |" in text
    assert text.count("## Colours and line styles") == 1 and "*test accuracy (`val_acc`)*" in text


def test_captions_say_what_the_colours_mean_and_nothing_false():
    conds = [curves_of("norm=none"), curves_of("norm=bn1")]
    spec = ReportSpec("x", "x", color_by="norm", style_by=None)
    text = _figure_caption(FigureSpec("curves"), conds, spec)
    assert "Colour marks `norm` (none blue, bn1 orange), as in every report that colours by it" in text
    assert "as in every figure here" not in text
    own = _figure_caption(FigureSpec("curves"), conds, ReportSpec("x", "x"))
    assert "One colour per condition, in this report only" in own


# --- legends show the line styles ------------------------------------------------------------------------

def test_legend_lines_show_their_style_long_enough_and_without_a_covering_marker():
    conds = [curves_of(f"batch_size={b} norm={n}") for b in (4, 64) for n in ("none", "bn1")]
    fig = curves_figure(conds, color_by="batch_size", style_by="norm")
    drawn = plotted(fig)
    legends = [ax.get_legend() for ax in fig.axes if ax.get_legend()]
    assert legends
    for leg in legends:
        assert leg.handlelength >= 3  # matplotlib's 2 font sizes show no gap of a dashed line
        for handle, text in zip(leg.legend_handles, leg.get_texts()):
            colour, style = drawn[text.get_text()]
            assert (matplotlib.colors.to_hex(handle.get_color()), handle.get_linestyle()) == (colour, style)
            assert handle.get_marker() in ("None", "", None)  # a dot in the middle hides the dash
    assert {s for _, s in drawn.values()} == {"-", "--"}
    plt.close(fig)


# --- bands in range, whole-epoch ticks, names ------------------------------------------------------------

def _band_ys(fig) -> list[np.ndarray]:
    return [p.vertices[:, 1] for ax in fig.axes for coll in ax.collections for p in coll.get_paths()]


def test_bands_stay_inside_the_metrics_range():
    # five seeds far apart: the t-band of a loss near 0 reaches below 0, of an accuracy near 100 above 100
    conds = [curves_of("norm=none", acc=99.0, loss=0.02, noise=0.5)]
    fig = curves_figure(conds, metrics=("val_loss", "val_acc"))
    loss_ax, acc_ax = fig.axes[0], fig.axes[1]
    for ax, (low, high) in ((loss_ax, (0.0, np.inf)), (acc_ax, (0.0, 100.0))):
        ys = np.concatenate([p.vertices[:, 1] for c in ax.collections for p in c.get_paths()])
        assert ys.min() >= low and ys.max() <= high
    plt.close(fig)
    assert metric_bounds("test_loss") == (0.0, np.inf) and metric_bounds("train_acc") == (0.0, 100.0)


def test_epoch_axes_tick_whole_epochs_only():
    fig = curves_figure([curves_of("norm=none", epochs=3)])
    for ax in fig.axes:
        if ax.get_xlabel() == "epoch":
            ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
            assert ticks and all(float(t).is_integer() for t in ticks), ticks
    plt.close(fig)


def test_a_test_set_metric_has_one_name_with_its_key():
    assert metric_title("val_acc", True) == "test accuracy, % (val_acc)"
    assert metric_title("test_acc", True) == "test accuracy, % (test_acc)"
    assert metric_title("val_loss", False) == "validation loss (val_loss)"
    assert metric_title("train_loss", True) == "training loss (train_loss)"
    fig = curves_figure([curves_of("norm=none")])
    assert [ax.get_ylabel() for ax in fig.axes[:3]] == ["training loss (train_loss)", "test loss (val_loss)",
                                                        "test accuracy, % (val_acc)"]
    assert not [t for ax in fig.axes for t in (ax.get_title(), ax.get_ylabel()) if "validation" in t]
    plt.close(fig)
    caption = _figure_caption(FigureSpec("curves"), [curves_of("norm=none")], ReportSpec("x", "x"))
    assert caption.startswith("training loss (`train_loss`), test loss (`val_loss`), test accuracy (`val_acc`) against")


# --- the probe's shares ------------------------------------------------------------------------------------

def probed(key: str, names: dict[str, float]) -> Condition:
    """A relu condition whose runs logged these layer-1 statistics at epochs 0..2."""
    return cond(key, lambda d: {f"act1_{n}": {e: v for e in range(3)} for n, v in names.items()} | {"act1_mean": {0: 0.1}},
                choices={"act": "relu"})


ACT_FIGURE = FigureSpec("dead", kind="activations", select=({"act": "relu"},), stats=("inactive", "dead_units"))


def test_relu_shares_are_fractions_under_honest_names_and_old_runs_are_still_read():
    new, old = probed("norm=none", {"zero_frac": 0.5, "dead_units": 0.02}), probed("norm=bn1", {"dead": 0.4})
    conds = [new, old]
    fig = figures.activations(ACT_FIGURE, conds, colours.palette(conds, "norm"), colours.line_styles(conds), "t")
    inactive_ax, dead_ax = fig.axes[0], fig.axes[1]
    lines = {ln.get_label(): ln.get_ydata() for ln in inactive_ax.get_lines()}
    assert list(lines["norm=none"]) == [0.5] * 3 and list(lines["norm=bn1"]) == [0.4] * 3  # fractions, not %
    assert "exactly 0" in inactive_ax.get_ylabel() and "dead" not in inactive_ax.get_ylabel()
    assert "units 0 on every image" in dead_ax.get_ylabel()
    assert [ln.get_label() for ln in dead_ax.get_lines()] == ["norm=none"]  # the old run has no dead units
    assert 0 < dead_ax.get_ylim()[1] <= 1.0
    plt.close(fig)
    caption = _figure_caption(ACT_FIGURE, conds, ReportSpec("x", "x", color_by="norm"))
    assert "`actN_zero_frac`" in caption and "not dead units" in caption and "`actN_dead`" in caption
    assert "Not logged by these runs, so not drawn: dead_units: norm=bn1." in caption


def test_an_inactive_share_that_stays_zero_still_has_a_y_axis():
    conds = [probed("norm=none", {"zero_frac": 0.0, "dead_units": 0.0})]
    fig = figures.activations(ACT_FIGURE, conds, colours.palette(conds), colours.line_styles(conds), "t")
    assert all(ax.get_ylim()[0] == 0 and ax.get_ylim()[1] > 0 and ax.get_yticks().size > 1 for ax in fig.axes[:2])
    plt.close(fig)


# --- tables: one loss kind per column; censored times as bounds --------------------------------------------

def test_losses_of_different_kinds_get_a_column_each():
    def book(key: str, loss: str, value: float) -> Condition:
        return cond(key, lambda d: {"test_acc": {3: 90.0 + d}, "test_loss": {3: value}, "train_loss": {3: value}},
                    choices={"loss.name": loss})

    conds = [book("+variant=a", "mse", 0.03), book("+variant=b", "bce", 0.07)]
    head, _, mse, bce = _final_table(conds, ReportSpec("x", "x", threshold_by=()), ())[:4]
    assert "test_loss, MSE (last epoch" in head and "test_loss, BCE (last epoch" in head
    assert "train_loss, MSE" in head and "| test_loss (last" not in head
    assert mse.strip("| ").split(" | ")[3:7] == ["0.0300 ± 0.0000", "—", "0.0300 ± 0.0000", "—"]
    assert bce.strip("| ").split(" | ")[3:7] == ["—", "0.0700 ± 0.0000", "—", "0.0700 ± 0.0000"]
    one_kind = [book("+variant=a", "mse", 0.03), book("+variant=c", "mse", 0.02)]
    assert "test_loss (last epoch" in _final_table(one_kind, ReportSpec("x", "x", threshold_by=()), ())[0]


def reaching(key: str, at: int | None, epochs: int = 10) -> Condition:
    """val_acc jumps to 95 at epoch ``at`` (None: never within ``epochs``), the same for every seed."""
    return cond(key, lambda d: {"val_acc": {e: 95.0 if at is not None and e >= at else 50.0
                                            for e in range(1, epochs + 1)}})


FAST = Comparison("faster", {"norm": "bn1"}, {"norm": "none"}, threshold=90, min_effect=2)


def test_a_run_that_never_got_there_makes_the_effect_a_bound_not_an_exact_interval():
    # the bn_vs_none report's "11.0 ± 0.0" and "+8.0 epochs [+8.0, +8.0]"
    part = evaluate_part(FAST, [reaching("norm=bn1", 3), reaching("norm=none", None)])
    text = effect_cell(part)
    assert text.startswith("≥ +8.0 epochs (+7.0, +∞)") and "5 of B's runs never got there" in text
    row = next(ln for ln in claims_table([evaluate(ClaimSpec("c", "c", (FAST,)), [reaching("norm=bn1", 3),
                                                                             reaching("norm=none", None)])])
               if ln.startswith("| **1."))
    assert "norm=none: >10 (n=5; 5 never reached 90)" in row and "11.0 ± 0.0" not in row and "[+8.0, +8.0]" not in row
    # A never got there: an upper bound
    slow = evaluate_part(Comparison("faster", {"norm": "none"}, {"norm": "bn1"}, threshold=90),
                         [reaching("norm=bn1", 3), reaching("norm=none", None)])
    assert effect_cell(slow).startswith("≤ -8.0 epochs (−∞, -7.0)")
    # neither did: nothing to say, and no verdict (fashion_bn's "+0.0 epochs [+0.0, +0.0]")
    both = evaluate_part(FAST, [reaching("norm=bn1", None), reaching("norm=none", None)])
    assert effect_cell(both).startswith("not measured: runs of both arms never reached 90")
    assert both.verdict == "inconclusive"


def test_some_censored_runs_make_the_arms_mean_a_lower_bound():
    part = evaluate_part(FAST, [reaching("norm=bn1", 2),
                                Condition("norm=none", "none", {"norm": "none"},
                                          tuple(run("norm=none", s, {"val_acc": {e: 95.0 if s < 3 and e >= 6 else 50.0
                                                                                  for e in range(1, 11)}})
                                                for s in range(5)))])
    assert part.censored == (0, 2)
    row = next(ln for ln in claims_table([evaluate(ClaimSpec("c", "c", (FAST,)), [part.a, part.b])])
               if ln.startswith("| **1."))
    assert "none: ≥ 8.0 (n=5; 2 never reached 90, counted one epoch past their end)" in row


def test_an_effect_without_spread_is_still_no_zero_width_interval():
    # batch_size's "+1.0 epochs [+1.0, +1.0]": every seed alike, but each time only known to its epoch
    part = evaluate_part(FAST, [reaching("norm=bn1", 1), reaching("norm=none", 4)])
    assert effect_cell(part) == ("+3.0 epochs (+2.0, +4.0); runs are read at epoch ends, so each time is known only "
                                 "to its epoch: widened by 1.0 below and 1.0 above, ends excluded")
    assert part.verdict == "supported"  # (2, 4) lies in "≥ 2 epochs sooner"
    barely = evaluate_part(FAST, [reaching("norm=bn1", 1), reaching("norm=none", 2)])
    # one epoch apart, each known to its epoch: the lead is under 2 epochs, whatever happened within them
    assert effect_cell(barely).startswith("+1.0 epochs (+0.0, +2.0)") and barely.verdict == "contradicted"


@pytest.mark.parametrize("stat", ["inactve", "dead"])
def test_a_misspelt_statistic_is_refused(stat):
    from bn_study.errors import UserError
    from bn_study.report.load import parse_spec

    with pytest.raises(UserError, match=r"figures\[0\].stats\[0\]"):
        parse_spec("x", {"figures": [{"name": "a", "kind": "activations", "select": [{"act": "relu"}],
                                      "stats": [stat]}]})


def test_a_tuned_param_in_the_table_is_rounded_as_people_read_it():
    conds = [curves_of("act=sigmoid optimizer.lr=0.28281248927714314 batch_size=64")]
    head, _, row = _final_table(conds, ReportSpec("x", "x", threshold_by=()), ("optimizer.lr", "batch_size"))[:3]
    assert head.startswith("| condition | optimizer.lr | batch_size |")
    assert row.strip("| ").split(" | ")[1:3] == ["0.2828", "64"]  # 4 significant digits, as in run names; an int as is
