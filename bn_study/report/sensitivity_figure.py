"""The sensitivity figure of a report: a metric against the parameter swept for every arm (log axis), one line
per arm with its 95 % t-band, a star at each arm's best value; colours and styles as in the report's other
figures."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib import pyplot as plt
from matplotlib.figure import Figure

from bn_study.report.colours import legend
from bn_study.report.figures import BAND_NOTE
from bn_study.report.names import metric_bounds, metric_title
from bn_study.report.sensitivity import ArmSummary


def sensitivity(arm_rows: Sequence[tuple[ArmSummary, ...]], epochs: Sequence[int | None], metric: str,
                colours: Mapping[str, tuple], styles: Mapping[str, str], title: str, param: str,
                val_is_test: bool) -> Figure:
    """``metric`` against the swept parameter (log axis), one panel per epoch of ``epochs``, one line per arm
    (its first condition's colour and style); a star marks each arm's best value in that panel."""
    fig, axes = plt.subplots(1, len(epochs), figsize=(5.2 * len(epochs) + 2.4, 4.0), squeeze=False,
                             layout="constrained")
    head = metric_title(metric, val_is_test)
    bounds = metric_bounds(metric)
    for epoch, row, ax in zip(epochs, arm_rows, axes[0]):
        for summary in row:
            first = summary.arm.points[0][1]
            xs = [x for x, s in zip(summary.arm.values, summary.summaries) if s is not None]
            kept = [s for s in summary.summaries if s is not None]
            if not kept:
                continue
            mean = np.array([s.mean for s in kept])
            half = np.array([s.half or 0.0 for s in kept])
            lo, hi = mean - half, mean + half
            if bounds is not None:
                lo, hi = np.clip(lo, *bounds), np.clip(hi, *bounds)
            colour = colours[first.key]
            ax.plot(xs, mean, styles[first.key], color=colour, lw=1.8, marker="o", ms=3, label=summary.label)
            ax.fill_between(xs, lo, hi, color=colour, alpha=0.18, lw=0)
            if summary.best is not None and summary.best in xs:
                ax.plot([summary.best], [mean[xs.index(summary.best)]], "*", color=colour, ms=12, mec="black", mew=0.6)
        values = sorted({x for summary in row for x in summary.arm.values})
        ax.set_xscale("log")
        ax.set_xticks(values, [f"{x:g}" for x in values], fontsize=8)
        ax.minorticks_off()
        ax.set_xlabel(param)
        ax.set_ylabel(head)
        ax.set_title(f"{head}, {'last epoch' if epoch is None else f'epoch {epoch}'}", fontsize=10)
        ax.grid(alpha=0.3)
    star = plt.Line2D([], [], ls="", marker="*", ms=12, color="grey", mec="black", mew=0.6)
    legend(axes[0][-1], *axes[0], extra=[(star, "the arm's best value (mean)")])
    fig.suptitle(f"{title}\n{BAND_NOTE} (finished runs at each value)", fontsize=11)
    return fig
