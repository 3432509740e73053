"""Reading a study's ``report:`` section (``spec.py`` says what it holds) from its experiment file, found in
the user's config directories first, then in the shipped catalogue."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, Union

from omegaconf import OmegaConf

from bn_study.config.sources import conf_dir
from bn_study.errors import UserError
from bn_study.report.spec import (DEFAULT_CURVES, FIGURE_KINDS, TESTS, ClaimSpec, Comparison, ConditionSpec,
                                  FigureSpec, ReportSpec, Selector, SequentialSpec)
from bn_study.report.stats import ANALYSES, SPENDING, WELCH
from bn_study.util.overrides import bare_key

# The shipped experiment catalogue: conf/experiment of the checkout, or bn_study/conf/experiment of an
# install (found like every config, through conf_dir(); without importing the Hydra app, which pulls in torch).
EXPERIMENT_DIR = conf_dir() / "experiment"

# Where experiment files are looked for: one directory, or several searched in order (the first hit wins).
ExperimentDirs = Union[Path, Sequence[Path]]


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
    section = _extended(section, directory, where=str(path), seen=(name,))
    return replace(parse_spec(name, section, order, where=str(path)), logs_to=logs_to, file=path)


def _extended(section: Any, directory: ExperimentDirs, *, where: str, seen: tuple[str, ...]) -> Any:
    """``report.extends: OTHER``: OTHER's report section (itself possibly extending), with this section's
    keys replacing its own."""
    if not isinstance(section, Mapping) or section.get("extends") is None:
        return section
    base = str(section["extends"])
    if base in seen:
        raise _fail(where, "extends", f"goes round in a circle ({' → '.join((*seen, base))})")
    path = experiment_file(base, directory)
    other = OmegaConf.to_container(OmegaConf.load(path), resolve=False) if path.is_file() else None
    if not isinstance(other, Mapping) or not isinstance(other.get("report"), Mapping):
        raise _fail(where, "extends", f"names {base!r}, which has no experiment file with a report section")
    inherited = _extended(other["report"], directory, where=str(path), seen=(*seen, base))
    return {**inherited, **{k: v for k, v in section.items() if k != "extends"}}


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


def _rounding(value: Any, where: str) -> float:
    """Points the published numbers were rounded to: each is read as value ± rounding/2, so not below 0."""
    rounding = _number(value, where, "published.rounding")
    if rounding < 0:
        raise _fail(where, "published.rounding", f"must be 0 or more (points the numbers were rounded to), not {value!r}")
    return rounding


def _epoch(value: Any, where: str, key: str) -> int | None:
    if value is None or value == "last":
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise _fail(where, key, f"must be an epoch number or 'last', not {value!r}")
    return value


def _comparison(raw: Mapping[str, Any], where: str, key: str, analysis: str = WELCH) -> Comparison:
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
    unknown = set(raw) - {"test", "a", "b", "metric", "epoch", "min_effect", "max_effect", "margin", "threshold",
                          "analysis", "under", "versus"}
    if unknown:
        raise _fail(where, key, f"has unknown keys {sorted(unknown)}")
    analysis = _choice(raw.get("analysis", analysis), ANALYSES, where, f"{key}.analysis")
    under = versus = None
    if test == "interaction":
        under = _selector(raw.get("under"), where, f"{key}.under")
        versus = _selector(raw.get("versus"), where, f"{key}.versus")
    elif "under" in raw or "versus" in raw:
        raise _fail(where, key, "sets under/versus, which only an interaction test reads")
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
        analysis=analysis, under=under, versus=versus,
    )


def _choice(value: Any, allowed: Sequence[str], where: str, key: str) -> str:
    if value not in allowed:
        raise _fail(where, key, f"must be one of {', '.join(allowed)}, not {value!r}")
    return str(value)


def _whole(value: Any, where: str, key: str, least: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        raise _fail(where, key, f"must be a whole number >= {least}, not {value!r}")
    return value


def _sequential(raw: Any, where: str) -> SequentialSpec | None:
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        raise _fail(where, "sequential", "must be a mapping like {add: 5, max_seeds: 10, spending: pocock}")
    unknown = set(raw) - {"add", "max_seeds", "spending"}
    if unknown:
        raise _fail(where, "sequential", f"has unknown keys {sorted(unknown)}; allowed: add, max_seeds, spending")
    return SequentialSpec(add=_whole(raw.get("add"), where, "sequential.add", 1),
                          max_seeds=_whole(raw.get("max_seeds"), where, "sequential.max_seeds", 2),
                          spending=_choice(raw.get("spending", "pocock"), SPENDING, where, "sequential.spending"))


def _claim(raw: Any, index: int, where: str, analysis: str = WELCH) -> ClaimSpec:
    key = f"claims[{index}]"
    if not isinstance(raw, Mapping) or not raw.get("text"):
        raise _fail(where, key, "must be a mapping with at least `text` and a comparison")
    if "all_of" in raw:
        parts = tuple(_comparison(p, where, f"{key}.all_of[{i}]", str(raw.get("analysis", analysis)))
                      for i, p in enumerate(raw["all_of"] or []))
        if not parts:
            raise _fail(where, f"{key}.all_of", "must list at least one comparison")
    else:
        parts = (_comparison({k: v for k, v in raw.items() if k not in ("id", "text", "source")}, where, key,
                             analysis),)
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
    analysis = _choice(raw.get("analysis", WELCH), ANALYSES, where, "analysis")
    claims = tuple(_claim(c, i, where, analysis) for i, c in enumerate(raw.get("claims") or []))
    return ReportSpec(
        experiment=name, title=str(raw.get("title", name)),
        question=None if raw.get("question") is None else str(raw["question"]),
        notes=None if raw.get("notes") is None else str(raw["notes"]).strip(),
        threshold_metric=str(threshold.get("metric", "val_acc")),
        threshold_value=_number(threshold.get("value", 90.0), where, "threshold.value"),
        conditions=tuple(conditions),
        published_metric=str(published.get("metric", "test_acc")),
        published_rounding=_rounding(published.get("rounding", 1.0), where),
        figures=figures, claims=claims, sweep_order=dict(sweep_order or {}),
        color_by=None if raw.get("color_by") is None else bare_key(str(raw["color_by"])),
        style_by=None if raw.get("style_by") is None else bare_key(str(raw["style_by"])),
        table_params=tuple(str(p) for p in raw.get("table_params") or ()),
        compare_with=None if raw.get("compare_with") is None else str(raw["compare_with"]),
        sequential=_sequential(raw.get("sequential"), where),
    )


def spec_from_config(config: Any) -> ReportSpec | None:
    """The ``report:`` section of a composed job config (what ``+experiment=NAME`` put there), or None."""
    section = config.get("report") if hasattr(config, "get") else None
    if section is None:
        return None
    raw = OmegaConf.to_container(section, resolve=False) if OmegaConf.is_config(section) else section
    name = str(config.tracking.experiment)
    sweeper = OmegaConf.to_container(config.hydra.sweeper, resolve=False) if "hydra" in config else {}
    order = _sweep_order({"hydra": {"sweeper": sweeper}})
    raw = _extended(raw, experiment_dirs(), where=f"+experiment ({name})", seen=(name,))
    return parse_spec(name, raw, order, where=f"report of {name}")
