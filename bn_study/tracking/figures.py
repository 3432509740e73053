"""The per-run figures: learning curves, hidden-activation histograms, the inputs of the nonlinearities over
the steps, one test record's outputs."""

from __future__ import annotations

import textwrap
from collections.abc import Mapping, Sequence
from typing import NamedTuple

import matplotlib

matplotlib.use("Agg")  # no display here; figures go to files

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from bn_study.data.catalog import DIGITS  # noqa: E402


def learning_curves(history: Sequence[Mapping[str, float]], title: str, val_split: str = "test") -> Figure:
    """Loss and accuracy against epochs, train and validation (``val_split``: what ``val_*`` measured)."""
    epochs = np.arange(1, len(history) + 1)
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4), layout="constrained")
    val = "test set (val_*)" if val_split == "test" else f"{val_split} (val_*)"
    for split, style, label in (("train", "-", "training set (train_*)"), ("val", "--", val)):
        ax_loss.plot(epochs, [h[f"{split}_loss"] for h in history], style, marker="o", ms=3, label=label)
        ax_acc.plot(epochs, [h[f"{split}_acc"] for h in history], style, marker="o", ms=3, label=label)
    ax_loss.set(xlabel="epoch", ylabel="loss", title="loss")
    ax_acc.set(xlabel="epoch", ylabel="accuracy (fraction)", title="accuracy")
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole
        ax.legend(handlelength=4)
    fig.suptitle(title, fontsize=10)
    return fig


def activation_histograms(first: Sequence[np.ndarray], last: Sequence[np.ndarray],
                          layer_names: Sequence[str], act: str, title: str) -> Figure:
    """Per hidden layer, the distribution of its outputs on the probe batch before and after training."""
    n = len(layer_names)
    fig, axes = plt.subplots(1, n, figsize=(3.2 * n, 3.2), layout="constrained", squeeze=False)
    for ax, name, before, after in zip(axes[0], layer_names, first, last):
        lo = float(min(before.min(), after.min()))
        hi = float(max(before.max(), after.max()))
        bins = np.linspace(lo, hi if hi > lo else lo + 1e-6, 50)
        ax.hist(before.ravel(), bins=bins, alpha=0.5, density=True, label="before training")
        ax.hist(after.ravel(), bins=bins, alpha=0.5, density=True, label="after training")
        ax.set(title=f"{name} ({act})", xlabel="activation", ylabel="density")
    axes[0][0].legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    return fig


class Percentiles(NamedTuple):
    """One unit's input percentiles at each probed step."""

    steps: Sequence[int]
    p15: Sequence[float]
    p50: Sequence[float]
    p85: Sequence[float]


def pre_activation_percentiles(rows: Mapping[str, Mapping[str, Mapping[int, Percentiles]]], act: str,
                               title: str) -> Figure:
    """Per run (a row, named by its key; one run: the key "") and hidden layer, each probed unit's
    15th/50th/85th percentile of its input to the nonlinearity over the training steps (the BatchNorm paper's
    figure 1): the median a solid line, 15–85 a dashed-edged band."""
    n = max(len(layers) for layers in rows.values())
    fig, axes = plt.subplots(len(rows), n, figsize=(3.6 * n, 3.4 * len(rows)), layout="constrained", squeeze=False)
    for ax_row, (row, layers) in zip(axes, rows.items()):
        for ax in ax_row[len(layers):]:
            ax.set_axis_off()
        for ax, (name, units) in zip(ax_row, layers.items()):
            for color, (unit, p) in zip(plt.rcParams["axes.prop_cycle"].by_key()["color"] * len(units), units.items()):
                ax.fill_between(p.steps, p.p15, p.p85, color=color, alpha=0.15, linewidth=0)
                for edge in (p.p15, p.p85):  # the bands of several units overlap: their edges tell them apart
                    ax.plot(p.steps, edge, "--", color=color, linewidth=0.8)
                ax.plot(p.steps, p.p50, "-", color=color, marker="o" if len(p.steps) < 30 else None, ms=3,
                        label=f"unit {unit}")
            ax.set_title(f"{textwrap.fill(row, 40)}\n{name}" if row else name, fontsize=9 if row else None)
            ax.set(xlabel="step", ylabel=f"input to {act}")
            steps = sorted({s for p in units.values() for s in p.steps})
            if len(steps) == 1:  # a run shorter than every_steps: its one look, at its own step
                ax.set_xticks(steps)
            else:
                ax.xaxis.set_major_locator(MaxNLocator(nbins=4, integer=True))  # step counts run to 5 digits
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7, title="p50, band p15–p85", title_fontsize=7)
    fig.suptitle(textwrap.fill(title, 100), fontsize=9)
    return fig


def record_outputs(outputs: np.ndarray, label: int, index: int, title: str,
                   classes: Sequence[str] | None = None) -> Figure:
    """The network's 10 outputs for one test image, as the book shows them for record 19; the nodes named
    by ``classes`` where they are not simply the digits."""
    digits = classes is None or tuple(classes) == DIGITS
    fig, ax = plt.subplots(figsize=(5, 3.2 if digits else 3.8), layout="constrained")
    colors = ["tab:green" if i == label else "tab:blue" for i in range(len(outputs))]
    ax.bar(np.arange(len(outputs)), outputs, color=colors)
    ax.set(xticks=np.arange(len(outputs)), ylabel="output")
    if digits:
        ax.set(xlabel="output node (digit)", title=f"test record {index} (label {label})")
    else:
        assert classes is not None
        ax.set_xticklabels(classes, rotation=40, ha="right", fontsize=8)
        ax.set(xlabel="output node (class)", title=f"test record {index} (label {label}: {classes[label]})")
    ax.grid(axis="y", alpha=0.3)
    fig.suptitle(textwrap.fill(title, 70), fontsize=9)  # a run's name is its overrides: long
    return fig


def close(fig: Figure) -> None:
    plt.close(fig)
