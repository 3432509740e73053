"""The ``report:`` section of an experiment file, value by value, into the dataclasses of ``spec.py``: every
mistake is one sentence naming the file, the key and what is allowed."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from bn_study.errors import UserError
from bn_study.report.spec import (BEST, DEFAULT_CURVES, EPOCHS, PROBE_STATS, SPEED_UNITS, FIGURE_KINDS, RANGE, TESTS, ClaimSpec, Comparison,
                                  ConditionSpec, FigureSpec, ReportSpec, Selector, SensitivitySpec, SequentialSpec)
from bn_study.report.spending import SPENDING
from bn_study.report.stats import ANALYSES, WELCH
from bn_study.util.overrides import bare_key


def spec_error(where: str, key: str, problem: str) -> UserError:
    return UserError(f"{where}: report.{key} {problem}.")


def _selector(value: Any, where: str, key: str) -> Selector:
    if not isinstance(value, Mapping) or not value:
        raise spec_error(where, key, "must be a non-empty mapping like {act: sigmoid, norm: bn1}")
    return {bare_key(str(k)): str(v) for k, v in value.items()}


def _number(value: Any, where: str, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise spec_error(where, key, f"must be a number, not {value!r}")
    return float(value)


def _rounding(value: Any, where: str) -> float:
    """Points the published numbers were rounded to: each is read as value ± rounding/2, so not below 0."""
    rounding = _number(value, where, "published.rounding")
    if rounding < 0:
        raise spec_error(where, "published.rounding", f"must be 0 or more (points the numbers were rounded to), not {value!r}")
    return rounding


def _epoch(value: Any, where: str, key: str) -> int | None:
    if value is None or value == "last":
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise spec_error(where, key, f"must be an epoch number or 'last', not {value!r}")
    return value


def _comparison(raw: Mapping[str, Any], where: str, key: str, analysis: str = WELCH,
                sensitivity: SensitivitySpec | None = None) -> Comparison:
    test = raw.get("test")
    if test not in TESTS:
        raise spec_error(where, f"{key}.test", f"must be one of {', '.join(TESTS)}, not {test!r}")
    metric = str(raw.get("metric", "val_acc"))
    margin = raw.get("margin")
    if test == "equivalent" and margin is None:
        raise spec_error(where, f"{key}.margin", "is required for an equivalence test (how close is 'the same'?)")
    threshold = raw.get("threshold")
    if test == "wider_range" and threshold is None and sensitivity is not None:
        threshold = sensitivity.good
    if test == "wider_range" and threshold is None:
        raise spec_error(where, f"{key}.threshold", "is required for a 'wider_range' test (the value a good run reaches), "
                    "or set report.sensitivity.good")
    if test == "faster" and threshold is None:
        raise spec_error(where, f"{key}.threshold", "is required for a 'faster' test (the value to reach)")
    unknown = set(raw) - {"test", "a", "b", "metric", "epoch", "min_effect", "max_effect", "margin", "threshold",
                          "analysis", "under", "versus", "at_every", "by"}
    if unknown:
        raise spec_error(where, key, f"has unknown keys {sorted(unknown)}")
    analysis = _choice(raw.get("analysis", analysis), ANALYSES, where, f"{key}.analysis")
    by = _choice(raw.get("by", EPOCHS), SPEED_UNITS, where, f"{key}.by")
    if "by" in raw and test != "faster":
        raise spec_error(where, f"{key}.by", "is read only by a 'faster' test (time in epochs or optimizer steps)")
    under = versus = None
    if test == "interaction":
        under = _selector(raw.get("under"), where, f"{key}.under")
        versus = _selector(raw.get("versus"), where, f"{key}.versus")
    elif "under" in raw or "versus" in raw:
        raise spec_error(where, key, "sets under/versus, which only an interaction test reads")
    a, b = _selector(raw.get("a"), where, f"{key}.a"), _selector(raw.get("b"), where, f"{key}.b")
    over = None
    if test == "wider_range" or BEST in (*a.values(), *b.values()):
        if sensitivity is None:
            why = "a 'wider_range' test" if test == "wider_range" else f"a selector value {BEST!r}"
            raise spec_error(where, key, f"uses {why}, which needs report.sensitivity: {{param: ...}} (the parameter "
                        "swept per arm)")
        over = sensitivity.param
        if test == "wider_range":  # the arm's whole grid, as one condition per arm
            a, b = {**a, over: RANGE}, {**b, over: RANGE}
        elif test == "interaction":
            raise spec_error(where, key, f"selects {over}: {BEST} in an interaction test, which is not supported")
    return Comparison(
        test=test, a=a, b=b, over=over,
        metric=metric,
        epoch=_epoch(raw.get("epoch"), where, f"{key}.epoch"),
        min_effect=_number(raw.get("min_effect", 0.0), where, f"{key}.min_effect"),
        max_effect=None if raw.get("max_effect") is None else _number(raw["max_effect"], where, f"{key}.max_effect"),
        margin=None if margin is None else _number(margin, where, f"{key}.margin"),
        threshold=None if threshold is None else _number(threshold, where, f"{key}.threshold"),
        analysis=analysis, under=under, versus=versus, by=by,
    )


def _choice(value: Any, allowed: Sequence[str], where: str, key: str) -> str:
    if value not in allowed:
        raise spec_error(where, key, f"must be one of {', '.join(allowed)}, not {value!r}")
    return str(value)


def _whole(value: Any, where: str, key: str, least: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        raise spec_error(where, key, f"must be a whole number >= {least}, not {value!r}")
    return value


def _sequential(raw: Any, where: str) -> SequentialSpec | None:
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        raise spec_error(where, "sequential", "must be a mapping like {add: 5, max_seeds: 10, spending: pocock}")
    unknown = set(raw) - {"add", "max_seeds", "spending", "claims"}
    if unknown:
        raise spec_error(where, "sequential", f"has unknown keys {sorted(unknown)}; allowed: add, max_seeds, spending, claims")
    claims = raw.get("claims")
    if claims is not None and (isinstance(claims, str) or not isinstance(claims, Sequence) or not claims):
        raise spec_error(where, "sequential.claims", f"must be a non-empty list of claim ids, not {claims!r}")
    return SequentialSpec(add=_whole(raw.get("add"), where, "sequential.add", 1),
                          max_seeds=_whole(raw.get("max_seeds"), where, "sequential.max_seeds", 2),
                          spending=_choice(raw.get("spending", "pocock"), SPENDING, where, "sequential.spending"),
                          claims=None if claims is None else tuple(str(c) for c in claims))


def _at_every(raw: Mapping[str, Any], where: str, key: str,
              sweep_order: Mapping[str, tuple[str, ...]]) -> list[Mapping[str, Any]]:
    """A comparison with ``at_every: KEY`` (every value the sweep gives KEY) or ``at_every: {KEY: [values]}``
    as one comparison per value, the value added to both selectors."""
    spec = raw.get("at_every")
    if spec is None:
        return [raw]
    if isinstance(spec, str):
        name, values = bare_key(spec), sweep_order.get(bare_key(spec))
        if not values:
            raise spec_error(where, f"{key}.at_every", f"names {spec!r}, which this experiment's sweep does not list "
                        "(hydra.sweeper.params); give the values: {KEY: [v1, v2]}")
    elif isinstance(spec, Mapping) and len(spec) == 1 and isinstance(next(iter(spec.values())), (list, tuple)):
        name, values = bare_key(str(next(iter(spec)))), tuple(str(v) for v in next(iter(spec.values())))
    else:
        raise spec_error(where, f"{key}.at_every", f"must be a swept key or {{KEY: [values]}}, not {spec!r}")
    rest = {k: v for k, v in raw.items() if k != "at_every"}
    return [{**rest, "a": {**(rest.get("a") or {}), name: v}, "b": {**(rest.get("b") or {}), name: v}}
            for v in values]


def _claim(raw: Any, index: int, where: str, analysis: str = WELCH, sensitivity: SensitivitySpec | None = None,
           sweep_order: Mapping[str, tuple[str, ...]] | None = None) -> ClaimSpec:
    key = f"claims[{index}]"
    if not isinstance(raw, Mapping) or not raw.get("text"):
        raise spec_error(where, key, "must be a mapping with at least `text` and a comparison")
    order = sweep_order or {}
    if "all_of" in raw:
        part_analysis = str(raw.get("analysis", analysis))
        parts = tuple(_comparison(q, where, f"{key}.all_of[{i}]", part_analysis, sensitivity)
                      for i, p in enumerate(raw["all_of"] or []) for q in _at_every(p, where, f"{key}.all_of[{i}]", order))
        if not parts:
            raise spec_error(where, f"{key}.all_of", "must list at least one comparison")
    else:
        single = {k: v for k, v in raw.items() if k not in ("id", "text", "source")}
        parts = tuple(_comparison(q, where, key, analysis, sensitivity) for q in _at_every(single, where, key, order))
    return ClaimSpec(id=str(raw.get("id", f"claim{index + 1}")), text=str(raw["text"]), parts=parts,
                     source=None if raw.get("source") is None else str(raw["source"]))


def _sensitivity(raw: Any, where: str) -> SensitivitySpec | None:
    if raw is None:
        return None
    if not isinstance(raw, Mapping) or not raw.get("param"):
        raise spec_error(where, "sensitivity", "must be a mapping with `param` (the key swept per arm, e.g. optimizer.lr)")
    unknown = set(raw) - {"param", "metric", "epochs", "good"}
    if unknown:
        raise spec_error(where, "sensitivity", f"has unknown keys {sorted(unknown)}; allowed: param, metric, epochs, good")
    epochs = raw.get("epochs", [1, "last"])
    if not isinstance(epochs, (list, tuple)) or not epochs:
        raise spec_error(where, "sensitivity.epochs", f"must be a list of epochs (numbers or 'last'), not {epochs!r}")
    return SensitivitySpec(param=bare_key(str(raw["param"])), metric=str(raw.get("metric", "val_acc")),
                           epochs=tuple(_epoch(e, where, "sensitivity.epochs") for e in epochs),
                           good=None if raw.get("good") is None else _number(raw["good"], where, "sensitivity.good"))


def _figure(raw: Any, index: int, where: str) -> FigureSpec:
    key = f"figures[{index}]"
    if not isinstance(raw, Mapping) or not raw.get("name"):
        raise spec_error(where, key, "must be a mapping with a `name` (the PNG's file name)")
    kind = raw.get("kind", "curves")
    if kind not in FIGURE_KINDS:
        raise spec_error(where, f"{key}.kind", f"must be one of {', '.join(FIGURE_KINDS)}, not {kind!r}")
    select = tuple(_selector(s, where, f"{key}.select[{i}]") for i, s in enumerate(raw.get("select") or []))
    if kind in ("activations", "pre_activations") and not select:
        raise spec_error(where, f"{key}.select", "must list the conditions whose activations are compared")

    def opt(name: str) -> str | None:
        return None if raw.get(name) is None else bare_key(str(raw[name]))

    stats = tuple(str(s) for s in raw.get("stats") or ("inactive", "std"))
    for i, stat in enumerate(stats):
        _choice(stat, PROBE_STATS, where, f"{key}.stats[{i}]")
    x = _choice(raw.get("x", EPOCHS), SPEED_UNITS, where, f"{key}.x")
    if "x" in raw and kind != "curves":
        raise spec_error(where, f"{key}.x", "is read only by a 'curves' figure (its x axis: epochs or steps)")
    return FigureSpec(
        name=str(raw["name"]), kind=kind, title=raw.get("title"),
        metrics=tuple(str(m) for m in raw.get("metrics") or DEFAULT_CURVES),
        rows=opt("rows"), select=select,
        stats=stats, caption=raw.get("caption"), x=x,
    )


def _threshold_by(raw: Any, where: str) -> tuple[str, ...]:
    values = [raw] if isinstance(raw, str) else raw
    if not isinstance(values, Sequence) or not values:
        raise spec_error(where, "threshold.by", f"must be a non-empty list of {', '.join(SPEED_UNITS)}, not {raw!r}")
    return tuple(_choice(v, SPEED_UNITS, where, "threshold.by") for v in values)


def parse_spec(name: str, raw: Any, sweep_order: Mapping[str, tuple[str, ...]] | None = None,
               where: str = "report") -> ReportSpec:
    if not isinstance(raw, Mapping):
        raise UserError(f"{where}: the report section must be a mapping.")
    threshold = raw.get("threshold") or {}
    published = raw.get("published") or {}
    conditions = []
    for i, c in enumerate(raw.get("conditions") or []):
        if not isinstance(c, Mapping):
            raise spec_error(where, f"conditions[{i}]", "must be a mapping with `select`")
        conditions.append(ConditionSpec(
            select=_selector(c.get("select"), where, f"conditions[{i}].select"),
            label=None if c.get("label") is None else str(c["label"]),
            published=None if c.get("published") is None else _number(c["published"], where, f"conditions[{i}].published"),
        ))
    figures = tuple(_figure(f, i, where) for i, f in enumerate(raw.get("figures") or [])) or (FigureSpec("curves"),)
    names = [f.name for f in figures]
    if len(set(names)) != len(names):
        raise spec_error(where, "figures", f"has duplicate names {names}")
    analysis = _choice(raw.get("analysis", WELCH), ANALYSES, where, "analysis")
    sensitivity = _sensitivity(raw.get("sensitivity"), where)
    if sensitivity is None and any(f.kind == "sensitivity" for f in figures):
        raise spec_error(where, "figures", "has a 'sensitivity' figure, which needs report.sensitivity: {param: ...}")
    claims = tuple(_claim(c, i, where, analysis, sensitivity, sweep_order)
                   for i, c in enumerate(raw.get("claims") or []))
    sequential = _sequential(raw.get("sequential"), where)
    unknown = sorted(set(sequential.claims or ()) - {c.id for c in claims}) if sequential else []
    if unknown:
        raise spec_error(where, "sequential.claims", f"names {unknown}, which are no claim ids of this report "
                         f"({', '.join(c.id for c in claims)})")
    return ReportSpec(
        experiment=name, title=str(raw.get("title", name)),
        question=None if raw.get("question") is None else str(raw["question"]),
        notes=None if raw.get("notes") is None else str(raw["notes"]).strip(),
        threshold_metric=str(threshold.get("metric", "val_acc")),
        threshold_value=_number(threshold.get("value", 90.0), where, "threshold.value"),
        threshold_by=_threshold_by(threshold.get("by", [EPOCHS]), where),
        conditions=tuple(conditions),
        published_metric=str(published.get("metric", "test_acc")),
        published_rounding=_rounding(published.get("rounding", 1.0), where),
        figures=figures, claims=claims, sweep_order=dict(sweep_order or {}),
        color_by=None if raw.get("color_by") is None else bare_key(str(raw["color_by"])),
        style_by=None if raw.get("style_by") is None else bare_key(str(raw["style_by"])),
        table_params=tuple(str(p) for p in raw.get("table_params") or ()),
        compare_with=None if raw.get("compare_with") is None else str(raw["compare_with"]),
        sequential=sequential, sensitivity=sensitivity, analysis=analysis,
    )
