"""What a report calls a metric, and the range its values can take: one rule for every figure and caption.

The naming rule (also in the METHOD section and reports/README.md): a number measured on the test images is
called *test* wherever words name it — ``test_acc``/``test_loss`` (logged once, after the last epoch) and, with
``data.val=test`` (every study here), ``val_acc``/``val_loss`` (logged each epoch: the Keras article's
``validation_data``, which is the test set); with ``data.val=holdout`` ``val_*`` is *validation* (the last
10 000 training images). Words are always followed by the MLflow key, and tables and claims name the key
itself, so the same column is never "test accuracy" in one place and an unexplained ``val_acc`` in another.
"""

from __future__ import annotations

import math

SPLITS = {"train": "training", "test": "test"}
# the rule, as reports/README.md states it
NAMING = ("Numbers measured on the 10 000 test images are called *test* wherever words name them, and the MLflow "
          "key follows in code font: `test_acc`/`test_loss` are logged once, after the last epoch; with "
          "`data.val=test` (every study here, as in the Keras article) `val_acc`/`val_loss` are the same test set "
          "each epoch, so *test accuracy (`val_acc`)* in a figure and `test_acc` in a table are the same images "
          "(at the last epoch, the same number). With `data.val=holdout`, `val_*` is *validation* (the last 10 000 "
          "training images). Tables and claims name the key itself. Accuracies are in %, the probe's shares "
          "(`actN_saturated`, `actN_zero_frac`, `actN_negative`, `actN_dead_units`) are fractions from 0 to 1, "
          "as MLflow holds them.")


def split_word(metric: str, val_is_test: bool) -> str:
    split = metric.partition("_")[0]
    if split == "val":
        return "test" if val_is_test else "validation"
    return SPLITS.get(split, split)


def metric_words(metric: str, val_is_test: bool) -> str:
    """``val_acc`` → ``test accuracy``; ``train_loss`` → ``training loss``; other names stay as they are."""
    split, _, what = metric.partition("_")
    if split not in ("train", "val", "test") or not what:
        return metric
    return f"{split_word(metric, val_is_test)} {'accuracy' if what == 'acc' else what}"


def metric_title(metric: str, val_is_test: bool) -> str:
    """An axis or panel name: the words, the unit and the MLflow key — ``test accuracy, % (val_acc)``."""
    words = metric_words(metric, val_is_test)
    if words == metric:
        return metric
    unit = ", %" if metric.endswith("_acc") else ""
    return f"{words}{unit} ({metric})"


def metric_bounds(metric: str) -> tuple[float, float] | None:
    """The values a metric can take, as the report holds it: accuracies 0–100 %, losses ≥ 0 (CE, MSE, BCE); a
    t-band over 3–5 seeds can reach past them and is drawn inside."""
    if metric.endswith("_acc"):
        return 0.0, 100.0
    if metric.endswith("_loss"):
        return 0.0, math.inf
    return None


LOSS_NAMES = {"ce": "cross-entropy", "mse": "MSE", "bce": "BCE"}


def loss_kind(choices) -> str:
    """The loss a condition trained with (the run param ``loss.name``, else the ``loss=`` override)."""
    return str(choices.get("loss.name") or choices.get("loss") or "")


def metric_columns(metrics, conditions) -> list[tuple[str, str | None]]:
    """A table's columns: (metric, loss kind). Losses of different kinds (MSE, BCE, CE) are different scales:
    when the conditions trained with more than one, each ``*_loss`` metric gets a column per kind."""
    kinds: list[str] = []
    for c in conditions:
        if (k := loss_kind(c.choices)) not in kinds:
            kinds.append(k)
    if len(kinds) <= 1:
        return [(m, None) for m in metrics]
    return [(m, k) for m in metrics for k in (kinds if m.endswith("_loss") else [None])]
