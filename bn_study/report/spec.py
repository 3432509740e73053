"""The ``report:`` section of ``conf/experiment/<name>.yaml``: what a study claims, and how to show it.

An experiment file is looked for in each ``--config-dir DIR`` of the report command (``DIR/experiment/``,
as Hydra reads it), then in the shipped catalogue (``conf_dir()/experiment``): see ``experiment_dirs``.

Claims are configuration, so a new study gets a report without code. The schema (every key optional
except a claim's ``text`` and its comparison; see ``conf/experiment/bn_vs_none.yaml`` for a full one)::

    report:
      title: "Keras BN article, experiment 1: ..."
      question: "Does one BN layer speed up training?"      # one line under the title
      notes: "markdown shown under the tables"
      threshold: {metric: val_acc, value: 90}                # "epochs to reach" column
      table_params: [optimizer.lr]                           # params shown per condition in the table
      conditions:                                            # display order, labels, published numbers
        - {select: {act: sigmoid, norm: none}, label: "sigmoid, no BN", published: 87}
      published: {metric: test_acc, rounding: 1}             # published numbers are rounded to 1 pp
      color_by: norm            # one colour per value of this key in every figure (default: per condition)
      style_by: null            # line style per value of this key (solid, dashed, …), in every figure
      figures:
        - {name: curves, kind: curves, metrics: [train_loss, val_acc], rows: act}
        - {name: saturation, kind: activations, select: [{act: sigmoid, norm: none}, ...], stats: [inactive, std]}
        - {name: published, kind: published}
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
        - id: ...
          text: ...
          all_of: [ {test: ..., a: ..., b: ..., ...}, ... ]   # every part must hold

The tests, with "effect" = how much A improves on B (higher accuracy, lower loss, fewer epochs) and
the verdict rule of ``stats.verdict`` (95 % CI inside the region: supported; outside: not supported):

- ``better``: effect > ``min_effect`` (default 0) and, if ``max_effect`` is given, ≤ ``max_effect``;
- ``not_better``: effect ≤ ``margin`` (A gains at most this much);
- ``equivalent``: −``margin`` ≤ effect ≤ ``margin`` (``margin`` required);
- ``faster``: like ``better``, on the epochs each run needed to reach ``threshold`` (required).

A selector (``a``, ``b``, ``select``) is a mapping of override keys (``act``, ``norm``, ``batch_size``,
``variant`` for ``+variant=``) or flattened params (``optimizer.name``) to values; it must pick out
exactly one condition of the sweep.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Union

from omegaconf import OmegaConf

from bn_study.config.sources import conf_dir
from bn_study.errors import UserError
from bn_study.util.overrides import bare_key
from bn_study.report.stats import Region

# The shipped experiment catalogue: conf/experiment of the checkout, or bn_study/conf/experiment of an
# install (found like every config, through conf_dir(); without importing the Hydra app, which pulls in torch).
EXPERIMENT_DIR = conf_dir() / "experiment"

# Where experiment files are looked for: one directory, or several searched in order (the first hit wins).
ExperimentDirs = Union[Path, Sequence[Path]]

TESTS = ("better", "not_better", "equivalent", "faster")
FIGURE_KINDS = ("curves", "activations", "published")
DEFAULT_CURVES = ("train_loss", "val_loss", "val_acc")

Selector = Mapping[str, str]


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

    def region(self) -> Region:
        """Where the effect (A's improvement over B, in the metric's good direction) must lie."""
        if self.test in ("better", "faster"):
            high = math.inf if self.max_effect is None else float(self.max_effect)
            return Region(float(self.min_effect), high, low_open=True, high_open=math.isinf(high))
        margin = float(self.margin or 0.0)
        if self.test == "not_better":
            return Region(-math.inf, margin, high_open=False)
        return Region(-margin, margin, low_open=False, high_open=False)  # equivalent

    def measured(self) -> str:
        """What number is compared, in words."""
        if self.test == "faster":
            return f"epochs to reach {self.metric} ≥ {self.threshold:g}"
        at = "the last epoch" if self.epoch is None else f"epoch {self.epoch}"
        return f"{self.metric} at {at}"


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


@dataclass(frozen=True)
class ReportSpec:
    experiment: str
    title: str
    question: str | None = None
    notes: str | None = None
    threshold_metric: str = "val_acc"
    threshold_value: float = 90.0
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


def experiment_dirs(config_dirs: Sequence[Path | str] = ()) -> tuple[Path, ...]:
    """Where experiments are searched, first hit wins: ``DIR/experiment`` for each user config directory in
    the given order (Hydra's ``--config-dir DIR`` means the same: ``+experiment=NAME`` reads
    ``DIR/experiment/NAME.yaml``), then the shipped catalogue."""
    return (*(Path(d) / "experiment" for d in config_dirs), conf_dir() / "experiment")


def _as_dirs(directory: ExperimentDirs) -> tuple[Path, ...]:
    return (Path(directory),) if isinstance(directory, (str, Path)) else tuple(Path(d) for d in directory)


def catalogue(directory: ExperimentDirs = EXPERIMENT_DIR) -> dict[str, Path]:
    """Every experiment name with the file it is read from (an earlier directory shadows a later one), by name."""
    found: dict[str, Path] = {}
    for d in _as_dirs(directory):
        for path in sorted(d.glob("*.yaml")):
            found.setdefault(path.stem, path)
    return dict(sorted(found.items()))


def experiment_file(name: str, directory: ExperimentDirs = EXPERIMENT_DIR) -> Path:
    """The file of experiment ``name``: the first directory that has it, else where the first one would."""
    dirs = _as_dirs(directory)
    for d in dirs:
        if (d / f"{name}.yaml").is_file():
            return d / f"{name}.yaml"
    return dirs[0] / f"{name}.yaml"


def known_experiments(directory: ExperimentDirs = EXPERIMENT_DIR) -> list[str]:
    return list(catalogue(directory))


def load_spec(name: str, directory: ExperimentDirs = EXPERIMENT_DIR) -> ReportSpec:
    """The experiment file's ``report:`` section; a study without a file (or section) gets the defaults."""
    path = experiment_file(name, directory)
    if not path.is_file():
        return ReportSpec(experiment=name, title=name, has_file=False)
    conf = OmegaConf.load(path)
    raw = OmegaConf.to_container(conf, resolve=False)
    assert isinstance(raw, dict)
    order = _sweep_order(raw)
    logs_to = (raw.get("tracking") or {}).get("experiment")
    section = raw.get("report")
    if section is None:
        return ReportSpec(experiment=name, title=name, sweep_order=order, logs_to=logs_to, file=path)
    return replace(parse_spec(name, section, order, where=str(path)), logs_to=logs_to, file=path)


def _sweep_order(raw: Mapping[str, Any]) -> dict[str, tuple[str, ...]]:
    """Each swept key's values in the file's order: the grid's ``params`` and a tuned study's ``arms``
    (a search space such as ``tag(log, interval(1e-4, 1))`` is no list of choices and is skipped)."""
    sweeper = (raw.get("hydra") or {}).get("sweeper") or {}
    order: dict[str, tuple[str, ...]] = {}
    for section in ("arms", "params"):
        for key, value in (sweeper.get(section) or {}).items():
            if value is None or "(" in str(value):
                continue
            order.setdefault(bare_key(str(key)), tuple(v.strip() for v in str(value).split(",")))
    return order


def _fail(where: str, key: str, problem: str) -> UserError:
    return UserError(f"{where}: report.{key} {problem}.")


def _selector(value: Any, where: str, key: str) -> Selector:
    if not isinstance(value, Mapping) or not value:
        raise _fail(where, key, "must be a non-empty mapping like {act: sigmoid, norm: bn1}")
    return {bare_key(str(k)): str(v) for k, v in value.items()}


def _number(value: Any, where: str, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _fail(where, key, f"must be a number, not {value!r}")
    return float(value)


def _epoch(value: Any, where: str, key: str) -> int | None:
    if value is None or value == "last":
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise _fail(where, key, f"must be an epoch number or 'last', not {value!r}")
    return value


def _comparison(raw: Mapping[str, Any], where: str, key: str) -> Comparison:
    test = raw.get("test")
    if test not in TESTS:
        raise _fail(where, f"{key}.test", f"must be one of {', '.join(TESTS)}, not {test!r}")
    metric = str(raw.get("metric", "val_acc"))
    margin = raw.get("margin")
    if test == "equivalent" and margin is None:
        raise _fail(where, f"{key}.margin", "is required for an equivalence test (how close is 'the same'?)")
    threshold = raw.get("threshold")
    if test == "faster" and threshold is None:
        raise _fail(where, f"{key}.threshold", "is required for a 'faster' test (the value to reach)")
    unknown = set(raw) - {"test", "a", "b", "metric", "epoch", "min_effect", "max_effect", "margin", "threshold"}
    if unknown:
        raise _fail(where, key, f"has unknown keys {sorted(unknown)}")
    return Comparison(
        test=test,
        a=_selector(raw.get("a"), where, f"{key}.a"),
        b=_selector(raw.get("b"), where, f"{key}.b"),
        metric=metric,
        epoch=_epoch(raw.get("epoch"), where, f"{key}.epoch"),
        min_effect=_number(raw.get("min_effect", 0.0), where, f"{key}.min_effect"),
        max_effect=None if raw.get("max_effect") is None else _number(raw["max_effect"], where, f"{key}.max_effect"),
        margin=None if margin is None else _number(margin, where, f"{key}.margin"),
        threshold=None if threshold is None else _number(threshold, where, f"{key}.threshold"),
    )


def _claim(raw: Any, index: int, where: str) -> ClaimSpec:
    key = f"claims[{index}]"
    if not isinstance(raw, Mapping) or not raw.get("text"):
        raise _fail(where, key, "must be a mapping with at least `text` and a comparison")
    if "all_of" in raw:
        parts = tuple(_comparison(p, where, f"{key}.all_of[{i}]") for i, p in enumerate(raw["all_of"] or []))
        if not parts:
            raise _fail(where, f"{key}.all_of", "must list at least one comparison")
    else:
        parts = (_comparison({k: v for k, v in raw.items() if k not in ("id", "text", "source")}, where, key),)
    return ClaimSpec(id=str(raw.get("id", f"claim{index + 1}")), text=str(raw["text"]), parts=parts,
                     source=None if raw.get("source") is None else str(raw["source"]))


def _figure(raw: Any, index: int, where: str) -> FigureSpec:
    key = f"figures[{index}]"
    if not isinstance(raw, Mapping) or not raw.get("name"):
        raise _fail(where, key, "must be a mapping with a `name` (the PNG's file name)")
    kind = raw.get("kind", "curves")
    if kind not in FIGURE_KINDS:
        raise _fail(where, f"{key}.kind", f"must be one of {', '.join(FIGURE_KINDS)}, not {kind!r}")
    select = tuple(_selector(s, where, f"{key}.select[{i}]") for i, s in enumerate(raw.get("select") or []))
    if kind == "activations" and not select:
        raise _fail(where, f"{key}.select", "must list the conditions whose activations are compared")

    def opt(name: str) -> str | None:
        return None if raw.get(name) is None else bare_key(str(raw[name]))

    return FigureSpec(
        name=str(raw["name"]), kind=kind, title=raw.get("title"),
        metrics=tuple(str(m) for m in raw.get("metrics") or DEFAULT_CURVES),
        rows=opt("rows"), select=select,
        stats=tuple(str(s) for s in raw.get("stats") or ("inactive", "std")), caption=raw.get("caption"),
    )


def parse_spec(name: str, raw: Any, sweep_order: Mapping[str, tuple[str, ...]] | None = None,
               where: str = "report") -> ReportSpec:
    if not isinstance(raw, Mapping):
        raise UserError(f"{where}: the report section must be a mapping.")
    threshold = raw.get("threshold") or {}
    published = raw.get("published") or {}
    conditions = []
    for i, c in enumerate(raw.get("conditions") or []):
        if not isinstance(c, Mapping):
            raise _fail(where, f"conditions[{i}]", "must be a mapping with `select`")
        conditions.append(ConditionSpec(
            select=_selector(c.get("select"), where, f"conditions[{i}].select"),
            label=None if c.get("label") is None else str(c["label"]),
            published=None if c.get("published") is None else _number(c["published"], where, f"conditions[{i}].published"),
        ))
    figures = tuple(_figure(f, i, where) for i, f in enumerate(raw.get("figures") or [])) or (FigureSpec("curves"),)
    names = [f.name for f in figures]
    if len(set(names)) != len(names):
        raise _fail(where, "figures", f"has duplicate names {names}")
    claims = tuple(_claim(c, i, where) for i, c in enumerate(raw.get("claims") or []))
    return ReportSpec(
        experiment=name, title=str(raw.get("title", name)),
        question=None if raw.get("question") is None else str(raw["question"]),
        notes=None if raw.get("notes") is None else str(raw["notes"]).strip(),
        threshold_metric=str(threshold.get("metric", "val_acc")),
        threshold_value=_number(threshold.get("value", 90.0), where, "threshold.value"),
        conditions=tuple(conditions),
        published_metric=str(published.get("metric", "test_acc")),
        published_rounding=_number(published.get("rounding", 1.0), where, "published.rounding"),
        figures=figures, claims=claims, sweep_order=dict(sweep_order or {}),
        color_by=None if raw.get("color_by") is None else bare_key(str(raw["color_by"])),
        style_by=None if raw.get("style_by") is None else bare_key(str(raw["style_by"])),
        table_params=tuple(str(p) for p in raw.get("table_params") or ()),
    )
