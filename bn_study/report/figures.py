"""The report's figures, in the articles' style: a metric against epochs, one line per condition, the
mean over seeds with a shaded 95 % t-band. Colours belong to conditions (or to the value of
``color_by``) and are the same in every figure of a report; line styles mark ``style_by`` (solid for
its first value, dashed for the second — the Keras article's none vs BN).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from bn_study.report.collect import Condition, RunRecord, select  # noqa: E402
from bn_study.report.epochs import STEPS_METRIC  # noqa: E402
from bn_study.report.spec import STEPS, FigureSpec  # noqa: E402
from bn_study.report.stats import summarize  # noqa: E402

LINE_STYLES = ("-", "--", ":", "-.")
INACTIVE_KINDS = ("saturated", "dead", "negative")
BAND_NOTE = "lines: mean over seeds; shaded: 95 % t-interval"


def _colour_list(n: int) -> list:
    cmap = plt.get_cmap("tab10" if n <= 10 else "tab20")
    return [cmap(i % cmap.N) for i in range(n)]


def _values_in_order(conditions: Sequence[Condition], key: str | None) -> list[str]:
    seen: list[str] = []
    for c in conditions:
        v = c.choices.get(key, "") if key else c.key
        if v not in seen:
            seen.append(v)
    return seen


def palette(conditions: Sequence[Condition], color_by: str | None = None) -> dict[str, tuple]:
    """Condition key → colour: one per condition, or one per value of ``color_by``."""
    values = _values_in_order(conditions, color_by)
    colours = dict(zip(values, _colour_list(len(values))))
    return {c.key: colours[c.choices.get(color_by, "") if color_by else c.key] for c in conditions}


def line_styles(conditions: Sequence[Condition], style_by: str | None = None) -> dict[str, str]:
    if not style_by:
        return {c.key: "-" for c in conditions}
    values = _values_in_order(conditions, style_by)
    return {c.key: LINE_STYLES[values.index(c.choices.get(style_by, "")) % len(LINE_STYLES)] for c in conditions}


def metric_title(metric: str, val_is_test: bool) -> str:
    split, _, what = metric.partition("_")
    names = {"train": "training", "val": "validation (= test set)" if val_is_test else "validation",
             "test": "test"}
    unit = " (%)" if what == "acc" else ""
    return f"{names.get(split, split)} {'accuracy' if what == 'acc' else what}{unit}"


def legend_label(cond: Condition) -> str:
    done, total = len(cond.finished), len(cond.runs)
    return cond.label if done == total else f"{cond.label} ({done}/{total} finished)"


def _band(ax, cond: Condition, metric: str, colour, style: str, first_step: int, scale: float = 1.0,
          bounds: tuple[float, float] | None = None, x: Mapping[int, float] | None = None) -> bool:
    """Mean line and 95 % band of ``metric`` (× ``scale``) over the condition's finished runs; False if
    nothing to draw. ``x``: where each step is drawn (epoch → optimizer steps); steps it lacks are left out."""
    steps = sorted({s for r in cond.finished for s in (r.history.get(metric) or {}) if s >= first_step
                    and (x is None or s in x)})
    xs, mean, lo, hi = [], [], [], []
    for s in steps:
        vals = [r.history[metric][s] * scale for r in cond.finished if s in (r.history.get(metric) or {})]
        vals = [v for v in vals if math.isfinite(v)]
        summary = summarize(vals)
        if summary is None:
            continue
        xs.append(s if x is None else x[s])
        mean.append(summary.mean)
        half = summary.half or 0.0
        lo.append(summary.mean - half)
        hi.append(summary.mean + half)
    if not xs:
        return False
    if bounds is not None:  # a t-band over 3–5 seeds can reach past 0 % or 100 %; draw it inside
        lo, hi = np.clip(lo, *bounds), np.clip(hi, *bounds)
    ax.plot(xs, mean, style, color=colour, lw=1.8, marker="o", ms=3, label=legend_label(cond))
    ax.fill_between(xs, lo, hi, color=colour, alpha=0.18, lw=0)
    return True


def _rows(conditions: Sequence[Condition], key: str | None) -> list[tuple[str | None, list[Condition]]]:
    if not key:
        return [(None, list(conditions))]
    return [(v, [c for c in conditions if c.choices.get(key, "") == v]) for v in _values_in_order(conditions, key)]


def _steps_axis(cond: Condition) -> dict[int, float]:
    """Epoch → optimizer steps made by its end, as the condition's runs logged it (the same for every seed of
    one batch size and training set)."""
    for r in cond.finished:
        if r.history.get(STEPS_METRIC):
            return dict(r.history[STEPS_METRIC])
    return {}


def curves(fig_spec: FigureSpec, conditions: Sequence[Condition], colours: Mapping[str, tuple],
           styles: Mapping[str, str], title: str, val_is_test: bool) -> Figure:
    """Rows: values of ``rows`` (e.g. sigmoid, relu); columns: the metrics; x: epochs, or optimizer steps on a
    log axis (``x: steps``: batch sizes make very different numbers of steps per epoch)."""
    by_steps = fig_spec.x == STEPS
    rows = _rows(conditions, fig_spec.rows)
    ncol = len(fig_spec.metrics)
    fig, axes = plt.subplots(len(rows), ncol, figsize=(4.6 * ncol + 2.2, 3.4 * len(rows) + 0.6),
                             squeeze=False, layout="constrained")
    for (row_value, conds), ax_row in zip(rows, axes):
        for metric, ax in zip(fig_spec.metrics, ax_row):
            for c in conds:
                _band(ax, c, metric, colours[c.key], styles[c.key], first_step=1,
                      bounds=(0.0, 100.0) if metric.endswith("_acc") else None,
                      x=_steps_axis(c) if by_steps else None)
            head = metric_title(metric, val_is_test)
            ax.set_title(f"{fig_spec.rows}={row_value}: {head}" if row_value is not None else head, fontsize=10)
            ax.set_ylabel(head)
            if by_steps:
                ax.set_xscale("log")
                ax.set_xlabel("optimizer steps (log scale; a point per epoch end)")
            else:
                ax.set_xlabel("epoch")
                ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.grid(alpha=0.3)
        handles, labels = ax_row[0].get_legend_handles_labels()
        if handles:
            ax_row[-1].legend(handles, labels, loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=8,
                              frameon=False, title=fig_spec.rows and f"{fig_spec.rows}={row_value}")
    fig.suptitle(f"{fig_spec.title or title}\n{BAND_NOTE}", fontsize=11)
    return fig


def _hidden_layers(conditions: Sequence[Condition]) -> list[int]:
    found = set()
    for c in conditions:
        for r in c.finished:
            for key in r.history:
                if key.startswith("act") and key.endswith("_mean") and key[3:-5].isdigit():
                    found.add(int(key[3:-5]))
    return sorted(found)


def _stat_key(cond: Condition, layer: int, stat: str) -> str:
    """``inactive`` is whatever the probe counted for this activation: saturated, dead or negative."""
    if stat != "inactive":
        return f"act{layer}_{stat}"
    for kind in INACTIVE_KINDS:
        key = f"act{layer}_{kind}"
        if any(key in r.history for r in cond.finished):
            return key
    return f"act{layer}_saturated"


def _stat_title(conds: Sequence[Condition], stat: str) -> str:
    if stat != "inactive":
        return {"std": "output std", "mean": "output mean"}.get(stat, stat)
    kinds = sorted({_stat_key(c, 1, stat).split("_", 1)[1] for c in conds})
    return "fraction " + "/".join(kinds) + " (%)"


def activations(fig_spec: FigureSpec, conditions: Sequence[Condition], colours: Mapping[str, tuple],
                styles: Mapping[str, str], title: str) -> Figure:
    """Per hidden layer (columns) and statistic (rows), over epochs 0 (before training) … E."""
    conds = [c for sel in fig_spec.select for c in select(conditions, sel)]
    conds = list({c.key: c for c in conds}.values())  # a condition matched by two selectors is drawn once
    layers = _hidden_layers(conds) or [1]
    stats = fig_spec.stats
    fig, axes = plt.subplots(len(stats), len(layers), figsize=(3.3 * len(layers) + 2.4, 2.9 * len(stats) + 0.7),
                             squeeze=False, layout="constrained")
    for stat, ax_row in zip(stats, axes):
        for layer, ax in zip(layers, ax_row):
            for c in conds:
                key = _stat_key(c, layer, stat)
                # fractions of units are shown in percent, like accuracies
                _band(ax, c, key, colours[c.key], styles[c.key], first_step=0,
                      scale=100.0 if stat == "inactive" else 1.0,
                      bounds=(0.0, 100.0) if stat == "inactive" else None)
            if stat == "inactive":  # a fraction: from 0, and a visible axis even when nothing saturates
                ax.set_ylim(bottom=0.0, top=max(ax.get_ylim()[1], 1.0))
            ax.set_title(f"hidden layer {layer}: {_stat_title(conds, stat)}", fontsize=9)
            ax.set_xlabel("epoch (0 = before training)")
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.grid(alpha=0.3)
        ax_row[0].set_ylabel(_stat_title(conds, stat))
    handles, labels = axes[0][0].get_legend_handles_labels()
    if handles:
        axes[0][-1].legend(handles, labels, loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=8, frameon=False)
    fig.suptitle(f"{fig_spec.title or title}\nprobe: hidden activations on 1 000 test images, eval mode; {BAND_NOTE}",
                 fontsize=11)
    return fig


PRE_ACTIVATION = re.compile(r"^act(\d+)_pre_u(\d+)_p(\d+)$")  # the pre-activation probe's metric names


def _pre_units(run: RunRecord) -> dict[int, list[int]]:
    """The probed units of each hidden layer, in order, as the run logged them."""
    units: dict[int, set[int]] = {}
    for key in run.history:
        m = PRE_ACTIVATION.match(key)
        if m:
            units.setdefault(int(m.group(1)), set()).add(int(m.group(2)))
    return {layer: sorted(u) for layer, u in sorted(units.items())}


def pre_activation_run(cond: Condition) -> RunRecord | None:
    """The run a pre-activation figure shows for a condition: its lowest seed's finished run that probed."""
    runs = sorted((r for r in cond.finished if _pre_units(r)), key=lambda r: (r.seed is None, r.seed, r.run_id))
    return runs[0] if runs else None


def pre_activation_rows(fig_spec: FigureSpec, conditions: Sequence[Condition]) -> dict[str, dict[str, dict]]:
    """What the BatchNorm paper's figure 1 shows, per selected condition: one run's (its lowest seed's) probed
    units per hidden layer, their input percentiles over the steps, as ``pre_activation_percentiles`` draws a
    run; conditions whose runs did not probe are left out."""
    from bn_study.tracking.figures import Percentiles

    conds = list({c.key: c for sel in fig_spec.select for c in select(conditions, sel)}.values())
    rows: dict[str, dict[str, dict]] = {}
    for cond in conds:
        run = pre_activation_run(cond)
        if run is None:
            continue
        layers = {}
        for layer, units in _pre_units(run).items():
            layers[f"act{layer}"] = {}
            for unit in units:
                series = [run.history.get(f"act{layer}_pre_u{unit}_p{pct}") or {} for pct in (15, 50, 85)]
                steps = sorted(set.intersection(*(set(x) for x in series)))
                layers[f"act{layer}"][unit] = Percentiles(steps, *([x[s] for s in steps] for x in series))
        rows[f"{cond.label} (seed {run.seed})"] = layers
    return rows


def published(conditions: Sequence[Condition], metric: str, colours: Mapping[str, tuple], title: str) -> Figure:
    """Reproduced (each seed as a dot, mean with its 95 % CI) against the published single run (×)."""
    conds = list(conditions)
    fig, ax = plt.subplots(figsize=(10.5, 0.55 * len(conds) + 1.6), layout="constrained")
    ys = np.arange(len(conds))[::-1]
    for y, c in zip(ys, conds):
        vals = c.values(metric)
        s = summarize(vals)
        ax.scatter(vals, [y] * len(vals), s=14, color=colours[c.key], alpha=0.5, zorder=2)
        if s is not None:
            ax.errorbar([s.mean], [y], xerr=[[s.half or 0.0], [s.half or 0.0]], fmt="o", ms=6, capsize=4,
                        color=colours[c.key], zorder=3)
        if c.published is not None:
            ax.scatter([c.published], [y], marker="X", s=90, color="black", zorder=4)
        # the numbers themselves, in a column right of the plot: the CIs are often narrower than a dot
        ours = "no finished run" if s is None else f"{s.mean:.2f} ± {s.half or 0.0:.2f}"
        theirs = "" if c.published is None else f"  (published {c.published:g})"
        ax.text(1.02, y, ours + theirs, transform=ax.get_yaxis_transform(), va="center", fontsize=8)
    ax.scatter([], [], marker="X", s=90, color="black", label="published (one run, rounded)")
    ax.errorbar([], [], xerr=[], fmt="o", color="grey", capsize=4, label="reproduced: mean ± 95 % CI")
    ax.scatter([], [], s=14, color="grey", alpha=0.5, label="reproduced: one seed")
    ax.set_yticks(ys, [legend_label(c) for c in conds])
    ax.set_xlabel(metric_title(metric, False))
    ax.grid(axis="x", alpha=0.3)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=3, fontsize=8, frameon=False)
    ax.set_title(title, fontsize=11)
    return fig


def save(fig: Figure, path: Path) -> None:
    """PNG without the matplotlib version stamp, so the same data gives the same file."""
    try:
        fig.savefig(path, dpi=110, metadata={"Software": None})
    finally:
        plt.close(fig)
