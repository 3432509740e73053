"""MLflow → tidy records: one ``RunRecord`` per child run of a sweep's parent run, grouped into conditions.

Everything the report says comes from here, read back from the tracking store (never from logs or
Hydra's output dirs), so a report can be regenerated from the store alone. Accuracies are converted
to percent on the way in: tables, thresholds, margins and published numbers are all in percent.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from mlflow import MlflowClient
from mlflow.entities import Run
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

from bn_study.errors import UserError
from bn_study.tracking.condition import canonical
from bn_study.tracking.store import local_sqlite_file
from bn_study.tracking.resume import reused_tag
from bn_study.report.spec import ReportSpec, Selector
from bn_study.util.overrides import bare_key

PARENT_ROLE = "multirun parent"
REPORTABLE_PARENT = ("FINISHED", "FAILED")  # a sweep that is still RUNNING is not reported by default
SKIPPED_METRICS = ("step_loss",)  # thousands of points per run; the report works per epoch


@dataclass(frozen=True)
class RunRecord:
    """One child run: which condition and seed, how it ended, and every per-epoch metric it logged."""

    run_id: str
    condition: str
    choices: Mapping[str, str]
    seed: int | None
    status: str
    failure: str | None
    history: Mapping[str, Mapping[int, float]]  # metric → {step: value}; *_acc in percent

    @property
    def finished(self) -> bool:
        return self.status == "FINISHED"

    def last_step(self, metric: str) -> int | None:
        steps = self.history.get(metric)
        return max(steps) if steps else None

    def value(self, metric: str, epoch: int | None = None) -> float | None:
        """The metric at ``epoch`` (None: its last logged step); None when it was not logged there."""
        steps = self.history.get(metric) or {}
        if not steps:
            return None
        return steps.get(max(steps) if epoch is None else epoch)


@dataclass(frozen=True)
class ParentInfo:
    run_id: str
    name: str
    status: str
    start_time: int  # ms since the epoch, as MLflow stores it
    overrides: str
    git_commit: str | None
    end_time: int | None = None  # None while the sweep runs


@dataclass(frozen=True)
class Study:
    """A sweep as the report sees it: its parent run and the child runs that belong to the study."""

    experiment: str
    parent: ParentInfo
    runs: tuple[RunRecord, ...]
    group_tag: str  # "condition", or "arm" for a tuned study's final runs
    other_parents: int = 0  # how many other reportable sweeps the experiment has (said in the README)
    machines: tuple[str, ...] = ()  # where the runs trained: their device and torch version tags
    datasets: tuple[str, ...] = ()  # what they trained on: their data.name params


@dataclass(frozen=True)
class Condition:
    """All runs of one condition (they differ only in the seed), with its display label."""

    key: str
    label: str
    choices: Mapping[str, str]
    runs: tuple[RunRecord, ...]
    published: float | None = None
    index: int = 0  # position in the report's order; also picks its colour
    grain: float = 0.0  # each value known only to ± this much (a wider_range claim's decades: the grid's spacing)

    @property
    def finished(self) -> tuple[RunRecord, ...]:
        return tuple(r for r in self.runs if r.finished)

    def values(self, metric: str, epoch: int | None = None) -> list[float]:
        """The metric over the condition's finished runs (diverged runs have no final value)."""
        out = [r.value(metric, epoch) for r in self.finished]
        return [v for v in out if v is not None and math.isfinite(v)]


# --- the store ------------------------------------------------------------------------------------------

def open_store(uri: str) -> MlflowClient:
    """A client for ``uri``; a local sqlite file that does not exist is reported, not silently created."""
    db = local_sqlite_file(uri)
    if db is not None:
        if not db.is_file():
            raise UserError(f"there is no MLflow store at {db}; run a study first "
                            "(python -m bn_study -m +experiment=<name>) or pass --tracking-uri.")
    return MlflowClient(uri)


def _all_runs(client: MlflowClient, experiment_id: str, filter_string: str) -> list[Run]:
    runs: list[Run] = []
    token = None
    while True:
        page = client.search_runs([experiment_id], filter_string=filter_string, max_results=1000,
                                  order_by=["attributes.start_time DESC"], page_token=token)
        runs.extend(page)
        token = page.token
        if not token:
            return runs


def choose_parent(client: MlflowClient, experiment: str, parent_id: str | None) -> tuple[Run, int]:
    """The sweep to report: ``parent_id``, else the latest parent run that has ended (FINISHED or FAILED).

    Returns the run and how many other ended sweeps the experiment has.
    """
    found = client.get_experiment_by_name(experiment)
    if found is None:
        raise UserError(f"experiment {experiment!r} has no runs in this MLflow store; "
                        f"run python -m bn_study -m +experiment={experiment} first.")
    parents = _all_runs(client, found.experiment_id, f"tags.role = '{PARENT_ROLE}'")
    ended = [p for p in parents if p.info.status in REPORTABLE_PARENT]
    if parent_id is not None:
        try:
            run = client.get_run(parent_id)
        except Exception as exc:  # MlflowException: RESOURCE_DOES_NOT_EXIST, or a malformed id
            raise UserError(f"--parent {parent_id!r} is not a run in this MLflow store.") from exc
        if run.info.experiment_id != found.experiment_id:
            raise UserError(f"--parent {parent_id!r} belongs to another experiment, not {experiment!r}.")
        return run, len([p for p in ended if p.info.run_id != parent_id])
    if not ended:
        running = [p.info.run_id for p in parents if p.info.status == "RUNNING"]
        hint = (f" (sweep {running[0]} is still running; pass --parent {running[0]} to report it as it stands)"
                if running else f"; run python -m bn_study -m +experiment={experiment} first")
        raise UserError(f"experiment {experiment!r} has no finished sweep (multirun parent run){hint}.")
    # newest first; the run id breaks a tie so the choice never depends on the store's row order
    ended.sort(key=lambda p: (-p.info.start_time, p.info.run_id))
    return ended[0], len(ended) - 1


def parent_info(run: Run) -> ParentInfo:
    tags = run.data.tags
    return ParentInfo(run_id=run.info.run_id, name=run.info.run_name or "", status=run.info.status,
                      start_time=int(run.info.start_time or 0), overrides=tags.get("overrides", ""),
                      git_commit=tags.get("git_commit"), end_time=run.info.end_time)


def override_choices(text: str) -> dict[str, str]:
    """``"act=sigmoid +variant=book_bce"`` → ``{"act": "sigmoid", "variant": "book_bce"}``."""
    out: dict[str, str] = {}
    for token in text.split():
        if "=" in token:
            key, value = token.split("=", 1)
            out[bare_key(key)] = value
    return out


def _history(client: MlflowClient, run: Run) -> dict[str, dict[int, float]]:
    history: dict[str, dict[int, float]] = {}
    for key in sorted(run.data.metrics):
        if key in SKIPPED_METRICS:
            continue
        scale = 100.0 if key.endswith("_acc") else 1.0
        points: dict[int, float] = {}
        # several values at one step (a resumed run) → the one logged last wins
        for m in sorted(client.get_metric_history(run.info.run_id, key), key=lambda m: (m.step, m.timestamp)):
            points[int(m.step)] = float(m.value) * scale
        history[key] = points
    return history


def to_record(client: MlflowClient, run: Run, group_tag: str) -> RunRecord:
    tags = run.data.tags
    condition = tags.get(group_tag) or tags.get("condition") or "defaults"
    choices = {bare_key(k): v for k, v in run.data.params.items()}
    choices.update(override_choices(tags.get("overrides", "")))
    choices.update(override_choices(condition))
    seed_text = tags.get("seed") or run.data.params.get("seed")
    try:
        seed = int(seed_text) if seed_text is not None else None
    except ValueError:
        seed = None
    return RunRecord(run_id=run.info.run_id, condition=condition, choices=choices, seed=seed,
                     status=run.info.status, failure=tags.get("failure_reason"), history=_history(client, run))


def collect(client: MlflowClient, experiment: str, parent_id: str | None = None) -> Study:
    """The chosen sweep and every one of its child runs (failed ones included: the report counts them)."""
    parent, others = choose_parent(client, experiment, parent_id)
    children = _all_runs(client, parent.info.experiment_id, f"tags.`{MLFLOW_PARENT_RUN_ID}` = '{parent.info.run_id}'")
    # runs an earlier sweep made that this one skipped (already done) or continued are its results too
    reused = _all_runs(client, parent.info.experiment_id, f"tags.`{reused_tag(parent.info.run_id)}` = 'true'")
    known = {c.info.run_id for c in children}
    children += [r for r in reused if r.info.run_id not in known]
    group_tag = "condition"
    # a tuned study (fair_bn): only the final runs at the tuned settings are compared, grouped by arm
    if any("stage" in c.data.tags for c in children):
        children = [c for c in children if c.data.tags.get("stage") == "final"]
        if any("arm" in c.data.tags for c in children):
            group_tag = "arm"
    if not children:
        raise UserError(f"the sweep {parent.info.run_id} of experiment {experiment!r} has no child runs to report.")
    records = [to_record(client, c, group_tag) for c in children]
    machines = sorted({f"{c.data.tags['device']}, torch {c.data.tags.get('torch_version', '?')}"
                       for c in children if "device" in c.data.tags})
    records.sort(key=lambda r: (r.condition, r.seed if r.seed is not None else -1, r.run_id))
    datasets = sorted({c.data.params["data.name"] for c in children if "data.name" in c.data.params})
    return Study(experiment=experiment, parent=parent_info(parent), runs=tuple(records), group_tag=group_tag,
                 other_parents=others, machines=tuple(machines), datasets=tuple(datasets))


# --- conditions -----------------------------------------------------------------------------------------

def matches(choices: Mapping[str, str], selector: Selector) -> bool:
    """Whether the choices have every value the selector names, however each was written (``1.0`` is ``1``)."""
    return all(k in choices and canonical(choices[k]) == canonical(v) for k, v in selector.items())


def _natural(text: str) -> tuple:
    """Numbers inside names sort as numbers: batch_size=4 before batch_size=64 before batch_size=1024."""
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in re.split(r"(\d+)", text) if p)


def default_label(key: str) -> str:
    """``act=sigmoid norm=bn1`` stays readable as is; ``+variant=book_bce`` becomes ``book_bce``."""
    parts = []
    for token in key.split():
        k, _, v = token.partition("=")
        parts.append(v if bare_key(k) == "variant" else f"{bare_key(k)}={v}" if v else token)
    return " ".join(parts) or key


def group(study: Study, spec: ReportSpec) -> list[Condition]:
    """The study's conditions in report order: as ``report.conditions`` lists them, then in the sweep's
    own order of values (``hydra.sweeper.params``), then by name."""
    by_key: dict[str, list[RunRecord]] = {}
    for r in study.runs:
        by_key.setdefault(r.condition, []).append(r)

    def shared(runs: Sequence[RunRecord]) -> dict[str, str]:
        first = runs[0].choices
        return {k: v for k, v in first.items() if all(r.choices.get(k) == v for r in runs) and k != "seed"}

    # a condition leaves out what has its default (act=sigmoid, optimizer.lr=0.01): its runs still have it, so
    # the order and the listed conditions read the runs' values, each compared as a condition writes it
    choices = {key: shared(runs) for key, runs in by_key.items()}
    listed = {key: [i for i, c in enumerate(spec.conditions) if matches(choices[key], c.select)] for key in by_key}
    sweep_order = {k: [canonical(v) for v in values] for k, values in spec.sweep_order.items()}

    def position(key: str, swept: str) -> int:
        value = choices[key].get(swept)
        value = None if value is None else canonical(value)
        return sweep_order[swept].index(value) if value in sweep_order[swept] else 10 ** 6

    def sort_key(key: str) -> tuple:
        return (listed[key][0] if listed[key] else 10 ** 6, tuple(position(key, k) for k in sweep_order), _natural(key))

    out: list[Condition] = []
    for i, key in enumerate(sorted(by_key, key=sort_key)):
        first = spec.conditions[listed[key][0]] if listed[key] else None
        label = first.label if first is not None and first.label else default_label(key)
        out.append(Condition(key=key, label=label, choices=choices[key], runs=tuple(by_key[key]),
                             published=first.published if first is not None else None, index=i))
    return out


def select(conditions: Iterable[Condition], selector: Selector) -> list[Condition]:
    return [c for c in conditions if matches(c.choices, selector)]
