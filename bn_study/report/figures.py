"""The report's figures, in the articles' style: a metric against epochs, one line per condition, the
mean over seeds with a shaded 95 % t-band kept inside the metric's range. Colours belong to the values of
``color_by``, the same in every report (``colours.FACTOR_COLOURS``); line styles mark ``style_by`` (solid for
its first value, dashed for the second — the Keras article's none vs BN), and every legend shows them.
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
from bn_study.report.colours import legend, values_in_order  # noqa: E402
from bn_study.report.epochs import STEPS_METRIC  # noqa: E402
from bn_study.report.names import metric_bounds, metric_title  # noqa: E402
from bn_study.report.spec import STEPS, FigureSpec  # noqa: E402
from bn_study.report.stats import summarize  # noqa: E402
from bn_study.train.probe_names import DEAD_UNITS, INACTIVE_KINDS, LEGACY_NAMES  # noqa: E402

BAND_NOTE = "lines: mean over seeds; shaded: 95 % t-interval"
# probe statistics, as fractions in [0, 1] (what MLflow holds); "inactive" is the one the activation has
STAT_NAMES = {"mean": "output mean", "std": "output std", DEAD_UNITS: "dead units: share of\nunits 0 on every image"}
INACTIVE_NAMES = {"saturated": "share of activations\nsaturated", "zero_frac": "share of activations\nexactly 0",
                  "negative": "share of activations\n< 0"}
STAT_BOUNDS = {"inactive": (0.0, 1.0), DEAD_UNITS: (0.0, 1.0), "std": (0.0, math.inf)}


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
    if bounds is not None:  # a t-band over 3–5 seeds can reach past 0 % or 100 %, or below a loss of 0
        lo, hi = np.clip(lo, *bounds), np.clip(hi, *bounds)
    ax.plot(xs, mean, style, color=colour, lw=1.8, marker="o", ms=3, label=legend_label(cond))
    ax.fill_between(xs, lo, hi, color=colour, alpha=0.18, lw=0)
    return True


def _rows(conditions: Sequence[Condition], key: str | None) -> list[tuple[str | None, list[Condition]]]:
    if not key:
        return [(None, list(conditions))]
    return [(v, [c for c in conditions if c.choices.get(key, "") == v]) for v in values_in_order(conditions, key)]


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
                _band(ax, c, metric, colours[c.key], styles[c.key], first_step=1, bounds=metric_bounds(metric),
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
        legend(ax_row[-1], *ax_row, title=fig_spec.rows and f"{fig_spec.rows}={row_value}")
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


def _stat_key(cond: Condition, layer: int, stat: str) -> str | None:
    """The metric a statistic is for this condition's runs: ``inactive`` is whatever the probe counted for its
    activation (saturated, zero_frac or negative; ``dead`` in runs logged before zero_frac had its name); None
    when the runs did not log it (dead units: relu only, and not in runs older than the statistic)."""
    names = [*INACTIVE_KINDS, *LEGACY_NAMES] if stat == "inactive" else [stat]
    for name in names:
        key = f"act{layer}_{name}"
        if any(key in r.history for r in cond.finished):
            return key
    return None


def _stat_kind(key: str | None) -> str | None:
    kind = None if key is None else key.split("_", 1)[1]
    return LEGACY_NAMES.get(kind, kind) if kind else None


def stat_title(conds: Sequence[Condition], stat: str) -> str:
    """A statistic's name in words (two lines: a row's y label), with the range of a fraction."""
    if stat != "inactive":
        return STAT_NAMES.get(stat, stat) + (" (0–1)" if stat == DEAD_UNITS else "")
    kinds = sorted({k for c in conds if (k := _stat_kind(_stat_key(c, 1, stat)))})
    return " / ".join(INACTIVE_NAMES.get(k, k) for k in kinds or ["saturated"]) + " (0–1)"


def probe_keys(fig_spec: FigureSpec, conditions: Sequence[Condition]) -> tuple[list[str], list[str]]:
    """The statistics' metric names the figure's conditions logged (layer 1's, as ``act1_zero_frac``), and
    ``stat: condition`` for each statistic a selected condition's runs did not log."""
    conds = list({c.key: c for sel in fig_spec.select for c in select(conditions, sel)}.values())
    keys = [(stat, c, _stat_key(c, 1, stat)) for stat in fig_spec.stats for c in conds]
    return sorted({k for _, _, k in keys if k}), [f"{stat}: {c.label}" for stat, c, k in keys if k is None]


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
            drawn = False
            for c in conds:
                key = _stat_key(c, layer, stat)  # fractions stay fractions (0–1), as MLflow holds them
                if key is not None:
                    drawn |= _band(ax, c, key, colours[c.key], styles[c.key], first_step=0, bounds=STAT_BOUNDS.get(stat))
            if not drawn:
                ax.text(0.5, 0.5, "not logged by these runs", transform=ax.transAxes, ha="center", fontsize=8)
            if STAT_BOUNDS.get(stat) == (0.0, 1.0):  # a fraction: from 0, and a visible axis even when it stays 0
                ax.set_ylim(bottom=0.0, top=max(ax.get_ylim()[1], 0.01))
            ax.set_title(f"hidden layer {layer}", fontsize=9)
            ax.set_xlabel("epoch (0 = before training)")
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.grid(alpha=0.3)
        ax_row[0].set_ylabel(stat_title(conds, stat))
    legend(axes[0][-1], *axes[0])
    fig.suptitle(f"{fig_spec.title or title}\nprobe: hidden activations on {_probe_images(conds)}, eval mode; "
                 f"{BAND_NOTE}", fontsize=11)
    return fig


def _probe_images(conds: Sequence[Condition]) -> str:
    """``1000 test images``: how many the runs probed (``probe.samples``), of which split."""
    counts = {r.choices.get("probe.samples") for c in conds for r in c.runs}
    splits = {r.choices.get("data.val", "test") for c in conds for r in c.runs}
    n = f"the first {counts.pop()}" if len(counts) == 1 and None not in counts else "the probe's"
    return f"{n} {'test' if splits == {'test'} else 'validation'} images"


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
