"""The per-run figures: learning curves, hidden-activation histograms, one test record's outputs."""

from __future__ import annotations

import textwrap
from collections.abc import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")  # no display here; figures go to files

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from bn_study.data.catalog import DIGITS  # noqa: E402


def learning_curves(history: Sequence[Mapping[str, float]], title: str) -> Figure:
    """Loss and accuracy against epochs, train and validation."""
    epochs = np.arange(1, len(history) + 1)
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4), layout="constrained")
    for split, style in (("train", "-"), ("val", "--")):
        ax_loss.plot(epochs, [h[f"{split}_loss"] for h in history], style, marker="o", ms=3, label=split)
        ax_acc.plot(epochs, [h[f"{split}_acc"] for h in history], style, marker="o", ms=3, label=split)
    ax_loss.set(xlabel="epoch", ylabel="loss", title="loss")
    ax_acc.set(xlabel="epoch", ylabel="accuracy", title="accuracy")
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        ax.legend()
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
        ax.set(title=f"{name} ({act})", xlabel="activation", yticks=[])
    axes[0][0].legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
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
