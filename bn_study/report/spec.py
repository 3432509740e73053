"""The ``report:`` section of ``conf/experiment/<name>.yaml``: what a study claims, and how to show it.

An experiment file is looked for in each ``--config-dir DIR`` of the report command (``DIR/experiment/``,
as Hydra reads it), then in the shipped catalogue (``conf_dir()/experiment``): see ``experiment_dirs``.

Claims are configuration, so a new study gets a report without code. The schema (every key optional
except a claim's ``text`` and its comparison; see ``conf/experiment/bn_vs_none.yaml`` for a full one)::

    report:
      extends: bn_vs_none       # start from that experiment's report section; keys given here replace its own
      compare_with: bn_vs_none  # a side-by-side section: these claims on that study's latest sweep too
      title: "Keras BN article, experiment 1: ..."
      question: "Does one BN layer speed up training?"      # one line under the title
      notes: "markdown shown under the tables"
      threshold: {metric: val_acc, value: 90, by: [epochs]}  # "epochs to reach" column (by: [epochs, steps])
      table_params: [optimizer.lr]                           # params shown per condition in the table
      conditions:                                            # display order, labels, published numbers
        - {select: {act: sigmoid, norm: none}, label: "sigmoid, no BN", published: 87}
      published: {metric: test_acc, rounding: 1}             # published numbers are rounded to 1 pp
      color_by: norm            # one colour per value of this key in every figure (default: per condition)
      style_by: null            # line style per value of this key (solid, dashed, …), in every figure
      analysis: paired          # welch (default) | paired: how every claim compares its arms (a claim may override)
      sequential: {add: 5, max_seeds: 10, spending: pocock}  # more seeds for undecided claims (grid studies);
                                # claims: [id, ...] limits which claims may add them (the expensive ones stay)
      sensitivity: {param: optimizer.lr, metric: val_acc, epochs: [1, last], good: 97}  # a parameter swept per arm
      figures:
        - {name: curves, kind: curves, metrics: [train_loss, val_acc], rows: act}
        - {name: per_step, kind: curves, metrics: [val_acc], x: steps}   # against optimizer steps, log axis
        - {name: saturation, kind: activations, select: [{act: sigmoid, norm: none}, ...], stats: [inactive, std]}
                                  # stats: inactive, dead_units (relu), mean, std
        - {name: published, kind: published}
        - {name: lr, kind: sensitivity}  # metric against report.sensitivity.param, one line per arm
        - {name: pre, kind: pre_activations, select: [{norm: none}, {norm: bn1}]}  # needs probe.every_steps
      claims:
        - id: sigmoid_speed
          text: "BN speeds sigmoid convergence a lot"
          source: "quote or paraphrase of the article"
          test: better            # better | not_better | equivalent | faster
          a: {act: sigmoid, norm: bn1}
          b: {act: sigmoid, norm: none}
          metric: val_acc         # accuracies are in percent, so effects/margins are in points (pp)
          epoch: 1                # an epoch number, or "last"
          min_effect: 5           # better: effect must exceed this ("a lot"); max_effect: "a little"
        - id: sigmoid_vs_relu
          text: "BN's gain is larger for sigmoid than for relu"
          test: interaction       # (A − B) under `under` minus (A − B) under `versus`
          a: {norm: bn1}
          b: {norm: none}
          under: {act: sigmoid}
          versus: {act: relu}
          metric: val_acc
          epoch: 1
        - id: bn_at_best_lr
          text: "At each arm's own best lr, BN is as good as no BN"
          test: equivalent
          a: {act: relu, norm: bn1, optimizer.lr: best}   # best: chosen per seed by the arm's other seeds
          b: {act: relu, norm: none, optimizer.lr: best}
          margin: 0.5
        - id: bn_everywhere
          text: "BN is better at every lr of the grid"
          test: better
          at_every: optimizer.lr  # one part per value the sweep has (or {optimizer.lr: [0.01, 0.1]}), all must hold
          a: {act: sigmoid, norm: bn1}
          b: {act: sigmoid, norm: none}
        - id: bn_tolerates
          text: "BN widens the range of good lrs by at least half a decade"
          test: wider_range       # per seed: decades of the grid reaching threshold
          a: {act: sigmoid, norm: bn1}
          b: {act: sigmoid, norm: none}
          threshold: 97
          min_effect: 0.5
        - id: ...
          text: ...
          all_of: [ {test: ..., a: ..., b: ..., ...}, ... ]   # every part must hold

The tests, with "effect" = how much A improves on B (higher accuracy, lower loss, fewer epochs) and
the verdict rule of ``stats.verdict`` (95 % CI inside the region: supported; entirely outside it:
contradicted or exceeded), then Holm across the report's claims (``claims.correct``):

- ``better``: effect > ``min_effect`` (default 0) and, if ``max_effect`` is given, ≤ ``max_effect``;
- ``not_better``: effect ≤ ``margin`` (A gains at most this much);
- ``equivalent``: −``margin`` ≤ effect ≤ ``margin`` (``margin`` required);
- ``faster``: like ``better``, on the epochs each run needed to reach ``threshold`` (required); with
  ``by: steps``, on the optimizer steps (the runs' per-epoch ``steps`` metric: across batch sizes an epoch is
  not the same amount of training);
- ``interaction``: like ``better``, on A's gain over B under ``under`` minus the same gain under ``versus``;
- ``wider_range``: like ``better``, on the decades of ``report.sensitivity.param`` at which each seed reaches
  ``threshold`` (default ``report.sensitivity.good``); a range's edges are known only to lie between two grid
  values, so its interval is widened by half those gaps per edge (``sensitivity.range_grain``).

A selector (``a``, ``b``, ``select``) is a mapping of override keys (``act``, ``norm``, ``batch_size``,
``variant`` for ``+variant=``) or flattened params (``optimizer.name``) to values; it must pick out
exactly one condition of the sweep.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from bn_study.report.stats import CONTRADICTED, EXCEEDED, WELCH, Region

SPEED_UNITS = EPOCHS, STEPS = ("epochs", "steps")  # what a faster test counts until the threshold
TESTS = ("better", "not_better", "equivalent", "faster", "interaction", "wider_range")
FIGURE_KINDS = ("curves", "activations", "published", "sensitivity", "pre_activations")
DEFAULT_CURVES = ("train_loss", "val_loss", "val_acc")
# an activations figure's rows: the activation's inactive share (saturated, zero_frac or negative), relu's dead
# units (0 on every probe image), the output's mean and std
PROBE_STATS = ("inactive", "dead_units", "mean", "std")

Selector = Mapping[str, str]
# selector values of report.sensitivity.param that name a condition built from an arm's grid
BEST = "best"  # each seed at the value the arm's other seeds do best with
RANGE = "range"  # wider_range: each seed's decades of the grid that reach the threshold


def higher_is_better(metric: str) -> bool:
    """Accuracies up, losses (and epochs, seconds) down."""
    return metric.endswith("_acc")


def unit_of(metric: str) -> str:
    """Accuracies are reported in percent, so their differences are percentage points."""
    return " pp" if metric.endswith("_acc") else ""


@dataclass(frozen=True)
class Comparison:
    """One test: does condition A beat (or match) condition B on ``metric`` at ``epoch``?"""

    test: str
    a: Selector
    b: Selector
    metric: str = "val_acc"
    epoch: int | None = None  # None = the last epoch the runs have
    min_effect: float = 0.0
    max_effect: float | None = None
    margin: float | None = None
    threshold: float | None = None  # faster: the metric value whose first crossing is timed
    analysis: str = WELCH  # welch (unpaired) | paired (over the seeds both arms ran)
    # interaction: the gain from A over B under ``under`` minus the same gain under ``versus``
    under: Selector | None = None
    versus: Selector | None = None
    # the swept parameter (report.sensitivity.param) when a selector says ``<param>: best`` or the test is
    # wider_range: the report then builds those conditions from the arm's grid (bn_study/report/sensitivity.py)
    over: str | None = None
    by: str = "epochs"  # faster: time counted in epochs, or in optimizer steps (the runs' `steps` metric)

    def quantity(self) -> str:
        """What the effect counts: the metric itself, or epochs/steps (faster) or decades (wider_range)."""
        return {"faster": self.by, "wider_range": "decades"}.get(self.test, self.metric)

    def unit(self) -> str:
        return {"faster": f" {self.by}", "wider_range": " decades"}.get(self.test, unit_of(self.metric))

    def region(self) -> Region:
        """Where the effect (A's improvement over B, in the metric's good direction) must lie."""
        if self.test in ("better", "faster", "interaction", "wider_range"):
            high = math.inf if self.max_effect is None else float(self.max_effect)
            return Region(float(self.min_effect), high, low_open=True, high_open=math.isinf(high))
        margin = float(self.margin or 0.0)
        if self.test == "not_better":
            return Region(-math.inf, margin, high_open=False, above=CONTRADICTED)
        # equivalent reads "A is as good as B": an A clearly better exceeds the claim, clearly worse contradicts it
        return Region(-margin, margin, low_open=False, high_open=False, above=EXCEEDED)

    def measured(self) -> str:
        """What number is compared, in words."""
        if self.test == "faster":
            return f"{self.by} to reach {self.metric} ≥ {self.threshold:g}"
        at = "the last epoch" if self.epoch is None else f"epoch {self.epoch}"
        if self.test == "wider_range":
            return f"decades of {self.over} with {self.metric} ≥ {self.threshold:g} at {at}"
        if self.test == "interaction":
            return f"gain in {self.metric} at {at}, {_shown(self.under)} minus {_shown(self.versus)}"
        return f"{self.metric} at {at}"


def _shown(selector: Selector | None) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted((selector or {}).items()))


@dataclass(frozen=True)
class SensitivitySpec:
    """A parameter swept for every arm on a log-spaced grid (the learning rate): what the report's
    sensitivity figure and best-value table show."""

    param: str  # e.g. optimizer.lr
    metric: str = "val_acc"
    epochs: tuple[int | None, ...] = (1, None)  # the figure's panels (None: the last epoch); the table: the last
    good: float | None = None  # a value of ``metric`` that makes a grid value good: the table's range column


@dataclass(frozen=True)
class SequentialSpec:
    """Seeds added in batches to the conditions of undecided claims, after the planned ones, up to a cap;
    each look spends part of α (``spending.look_alphas``)."""

    add: int  # seeds per condition added at each further look
    max_seeds: int  # the cap per condition, planned seeds included
    spending: str = "pocock"  # pocock | obrien_fleming
    # the claims whose conditions may get more seeds (None: every undecided claim's); the others are judged
    # at the seeds they have
    claims: tuple[str, ...] | None = None


@dataclass(frozen=True)
class ClaimSpec:
    id: str
    text: str
    parts: tuple[Comparison, ...]
    source: str | None = None


@dataclass(frozen=True)
class ConditionSpec:
    select: Selector
    label: str | None = None
    published: float | None = None


@dataclass(frozen=True)
class FigureSpec:
    name: str
    kind: str = "curves"
    title: str | None = None
    metrics: tuple[str, ...] = DEFAULT_CURVES
    rows: str | None = None  # one row of panels per value of this key
    select: tuple[Selector, ...] = ()
    stats: tuple[str, ...] = ("inactive", "std")
    caption: str | None = None
    x: str = "epochs"  # curves: against epochs, or optimizer steps (log axis; the runs' `steps` metric)


@dataclass(frozen=True)
class ReportSpec:
    experiment: str
    title: str
    question: str | None = None
    notes: str | None = None
    threshold_metric: str = "val_acc"
    threshold_value: float = 90.0
    threshold_by: tuple[str, ...] = ("epochs",)  # the table's time-to-threshold columns: epochs, steps
    conditions: tuple[ConditionSpec, ...] = ()
    published_metric: str = "test_acc"
    published_rounding: float = 1.0
    figures: tuple[FigureSpec, ...] = (FigureSpec("curves"),)
    # colours and line styles mean the same in every figure of a report: one colour per condition, or
    # per value of color_by; line style per value of style_by (solid for its first value, dashed, …)
    color_by: str | None = None
    style_by: str | None = None
    table_params: tuple[str, ...] = ()  # run params shown per condition (a tuned study: its tuned lr)
    claims: tuple[ClaimSpec, ...] = ()
    # the sweep's own order of values per key (hydra.sweeper.params), used to order conditions
    sweep_order: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    # False when conf/experiment/<name>.yaml does not exist (a study run with tracking.experiment=<name>)
    has_file: bool = True
    # the MLflow experiment the file's runs go to (book_baseline.yaml: book_ch3), when it says
    logs_to: str | None = None
    # the experiment file read (None without one): which of the searched config directories it came from
    file: Path | None = None
    # another experiment whose latest sweep is shown beside this one, judged by these same claims
    compare_with: str | None = None
    # seeds added to undecided claims' conditions after the planned ones (None: the planned seeds only)
    sequential: SequentialSpec | None = None
    # a parameter swept per arm (lr_sensitivity): its figure, best-value table and claims' ``best``/``wider_range``
    sensitivity: SensitivitySpec | None = None
    analysis: str = WELCH  # the section's analysis (each claim may override it)
