"""One experiment's report, end to end: spec + MLflow → conditions → claims → figures → README → artifacts."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from mlflow import MlflowClient

from bn_study.errors import UserError
from bn_study.report import colours as shared_colours
from bn_study.report import figures, sensitivity_figure
from bn_study.report.names import metric_words
from bn_study.tracking import figures as run_figures
from bn_study.report.published import PublishedResult, compare_published
from bn_study.report.sequential import judge
from bn_study.report.collect import Condition, Study, collect, group, select
from bn_study.report.render import FigureEntry, experiment_readme, index_readme
from bn_study.report.side_by_side import Side, side_by_side, side_name
from bn_study.report.load import ExperimentDirs, experiment_dirs, known_experiments, load_spec
from bn_study.report.sensitivity import arm_summaries
from bn_study.report.spec import STEPS, FigureSpec, ReportSpec

ARTIFACT_DIR = "report"  # under the sweep's parent run
# a tuned study's arms differ in what the tuning chose: show it next to the result
TUNED_PARAMS = ("optimizer.lr", "batch_size")


def _val_is_test(conditions: Sequence[Condition]) -> bool:
    return all(c.choices.get("data.val", "test") == "test" for c in conditions)


def _named(metric: str, val_is_test: bool) -> str:
    """``test accuracy (`val_acc`)``: the words and the MLflow key (names.py's rule)."""
    words = metric_words(metric, val_is_test)
    return f"`{metric}`" if words == metric else f"{words} (`{metric}`)"


def _figure_caption(f: FigureSpec, conditions: Sequence[Condition], spec: ReportSpec) -> str:
    if f.caption:
        return str(f.caption).strip()
    val_is_test = _val_is_test(conditions)
    look = (shared_colours.colour_sentence(conditions, spec.color_by)
            + shared_colours.style_sentence(conditions, spec.style_by))
    if f.kind == "curves":
        rows = f" One row per `{f.rows}`." if f.rows else ""
        against = ("optimizer steps (log scale), a point at each epoch's end" if f.x == STEPS else "epochs")
        return (f"{', '.join(_named(m, val_is_test) for m in f.metrics)} against {against} for every condition: the "
                f"mean over seeds (line) and its 95 % t-interval (band, kept inside the metric's range).{rows}{look}")
    if f.kind == "sensitivity":
        sens = spec.sensitivity
        assert sens is not None
        return (f"{_named(sens.metric, val_is_test)} against {sens.param} for each arm (every setting but "
                f"{sens.param}), at {', '.join('the last epoch' if e is None else f'epoch {e}' for e in sens.epochs)}: "
                "the mean over seeds (line) and its 95 % t-interval (band), finished runs only (the table below counts "
                f"the failed ones); a star marks each arm's best value.{look}")
    if f.kind == "pre_activations":
        runs = [f"{c.label} (seed {r.seed})" for sel in f.select for c in select(conditions, sel)
                if (r := figures.pre_activation_run(c)) is not None]
        return ("The input to each hidden nonlinearity during training, as the BatchNorm paper's figure 1 shows it: "
                "for one probed unit per layer, the 15th, 50th and 85th percentiles over the fixed probe batch, "
                f"every probe.every_steps steps from step 0 (before training), for {'; '.join(runs)}.")
    if f.kind == "activations":
        shown = list({c.key: c for sel in f.select for c in select(conditions, sel)}.values())
        look = (shared_colours.colour_sentence(shown, spec.color_by)
                + shared_colours.style_sentence(conditions, spec.style_by, shown))
        names = "; ".join(c.label for c in shown)
        return (f"Hidden-layer outputs at test time, per layer and epoch (0 = before training): {', '.join(f.stats)} "
                f"for {names}. Shares are fractions from 0 to 1, as MLflow holds them.{_probe_words(f, conditions)}"
                f"{look}")
    return (f"{_named(spec.published_metric, _val_is_test(conditions))} per condition: each seed (small dots), the "
            f"mean with its 95 % CI (large dot and bar), and the published single run (black ×).{look}")


# what each probe statistic is, said only for those a figure shows (its MLflow name, layer N)
PROBE_WORDS = {
    "saturated": "`inactive` is the share of a layer's activations (image × unit) that are saturated: sigmoid "
                 "outputs < 0.01 or > 0.99, |tanh| > 0.99 (`actN_saturated`).",
    "zero_frac": "`inactive` is the share of a layer's relu activations (image × unit) that are exactly 0 "
                 "(`actN_zero_frac`): about half before training, relu's normal sparsity — not dead units.",
    "dead": "`inactive` is, for relu runs logged before the rename, their `actN_dead`: the share of activations "
            "(image × unit) exactly 0, what `actN_zero_frac` is now — relu's normal sparsity, not dead units; those "
            "runs logged no dead-unit share.",
    "negative": "`inactive` is the share of a layer's leaky relu activations (image × unit) below 0, on the "
                "leaky side (`actN_negative`).",
    "dead_units": "`dead_units` is the share of a layer's relu units that are 0 on every probe image "
                  "(`actN_dead_units`): units that pass no gradient for any of them.",
}


def _probe_words(f: FigureSpec, conditions: Sequence[Condition]) -> str:
    keys, missing = figures.probe_keys(f, conditions)
    kinds = [k.split("_", 1)[1] for k in keys]
    text = "".join(f" {PROBE_WORDS[k]}" for k in PROBE_WORDS if k in kinds)
    return text + (f" Not logged by these runs, so not drawn: {'; '.join(missing)}." if missing else "")


def draw_figures(spec: ReportSpec, conditions: Sequence[Condition], out: Path) -> list[FigureEntry]:
    val_is_test = _val_is_test(conditions)
    colours = shared_colours.palette(conditions, spec.color_by)  # the same in every figure of every report
    styles = shared_colours.line_styles(conditions, spec.style_by)
    entries = []
    for f in spec.figures:
        title = f"{spec.experiment}: {f.title or spec.title}"
        if f.kind == "curves":
            fig = figures.curves(f, conditions, colours, styles, title, val_is_test)
        elif f.kind == "sensitivity":
            sens = spec.sensitivity
            assert sens is not None  # the loader refuses a sensitivity figure without the section
            rows = [arm_summaries(conditions, sens, epoch, spec.analysis) for epoch in sens.epochs]
            if not any(rows):
                continue  # the parameter was not swept in this sweep
            fig = sensitivity_figure.sensitivity(rows, sens.epochs, sens.metric, colours, styles, title, sens.param, val_is_test)
        elif f.kind == "pre_activations":
            acts = sorted({c.choices.get("act") or c.choices.get("act.name", "") for sel in f.select
                           for c in select(conditions, sel)} - {""})
            rows = figures.pre_activation_rows(f, conditions)
            if not rows:
                continue  # its conditions did not run here, or ran without probe.every_steps
            fig = run_figures.pre_activation_percentiles(rows, "/".join(acts) or "the nonlinearity",
                                                         f"{title} — one run per condition")
        elif f.kind == "activations":
            if not any(select(conditions, s) for s in f.select):
                continue  # none of its conditions ran in this sweep
            fig = figures.activations(f, conditions, colours, styles, title)
        else:
            if not any(c.published is not None for c in conditions):
                continue
            fig = figures.published(conditions, spec.published_metric, colours,
                                    f"{spec.experiment}: published vs reproduced {spec.published_metric}")
        file = f"{f.name}.png"
        figures.save(fig, out / file)
        entries.append(FigureEntry(file, f.title or f.name, _figure_caption(f, conditions, spec)))
    return entries


def build(study: Study, spec: ReportSpec, out: Path, other: tuple[Study, ReportSpec] | None = None) -> Path:
    """Write README.md and the figures into ``out`` (old ones removed first); return the README's path.
    ``other``: the study of ``spec.compare_with`` (and its spec), judged by this spec's claims beside this one."""
    conditions = group(study, spec)
    claims = judge(spec, conditions)
    beside = None
    if other is not None:
        other_conditions = group(*other)
        this_side = Side(side_name(study), study, conditions, claims)
        other_side = Side(side_name(other[0]), other[0], other_conditions,
                          judge(spec, other_conditions))
        beside = (other_side.name, side_by_side(this_side, other_side))
    published: list[PublishedResult] = [r for c in conditions
                                         if (r := compare_published(c, spec.published_metric, spec.published_rounding))]
    out.mkdir(parents=True, exist_ok=True)
    for old in [*out.glob("*.png"), out / "README.md"]:  # only what an earlier report wrote here
        old.unlink(missing_ok=True)
    entries = draw_figures(spec, conditions, out)
    readme = out / "README.md"
    params = spec.table_params or tuple(p for p in (TUNED_PARAMS if study.group_tag == "arm" else ())
                                        if any(p in r.choices for r in study.runs))
    readme.write_text(experiment_readme(study, spec, conditions, claims, published, entries, params, beside),
                      encoding="utf-8")
    return readme


def log_to_parent(client: MlflowClient, study: Study, out: Path) -> None:
    """The same files as artifacts of the sweep's parent run, under ``report/``."""
    client.log_artifacts(study.parent.run_id, str(out), ARTIFACT_DIR)


def report_experiment(client: MlflowClient, name: str, out_root: Path, *, parent_id: str | None = None,
                      artifacts: bool = True, experiment_dir: ExperimentDirs | None = None) -> Path:
    """``experiment_dir``: where experiment files are searched, in order (default: the shipped catalogue;
    the CLI passes ``experiment_dirs(--config-dir …)``)."""
    dirs = experiment_dirs() if experiment_dir is None else experiment_dir
    spec = load_spec(name, dirs)
    if spec.logs_to and spec.logs_to != name and client.get_experiment_by_name(name) is None:
        raise UserError(f"{spec.file} logs its runs to the MLflow experiment {spec.logs_to!r}; "
                        f"report that one: python -m bn_study.report {spec.logs_to}.")
    if not spec.has_file and client.get_experiment_by_name(name) is None:
        known = ", ".join(known_experiments(dirs))
        searched = " or ".join(str(d) for d in ([Path(dirs)] if isinstance(dirs, (str, Path)) else dirs))
        raise UserError(f"unknown experiment {name!r}: there is no {name}.yaml in {searched} and no MLflow "
                        f"experiment of that name; known experiments: {known} (an experiment of your own: add "
                        f"--config-dir DIR, the directory you passed to python -m bn_study).")
    study = collect(client, name, parent_id)
    other = None
    if spec.compare_with:
        if client.get_experiment_by_name(spec.compare_with) is None:
            raise UserError(f"{spec.file}: report.compare_with names {spec.compare_with!r}, which has no runs in "
                            f"this MLflow store; run it there first: python -m bn_study -m +experiment={spec.compare_with}.")
        other = (collect(client, spec.compare_with), load_spec(spec.compare_with, dirs))
    readme = build(study, spec, out_root / name, other)
    if artifacts:
        log_to_parent(client, study, readme.parent)
    return readme


def write_index(out_root: Path) -> Path:
    """``out_root``/README.md: every report there, the colour of each factor's values and the naming rule."""
    out_root.mkdir(parents=True, exist_ok=True)
    path = out_root / "README.md"
    path.write_text(index_readme(out_root), encoding="utf-8")
    return path

