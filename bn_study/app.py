"""The Hydra task: config → data → model → loop → tracking, and the objective back to the sweeper."""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from pathlib import Path

import hydra
import optuna
import torch
from omegaconf import DictConfig, OmegaConf

from bn_study import figures
from bn_study.job import JobContext, resolve_path
from bn_study.data import Splits, load_splits
from bn_study.errors import UserError, exit_for_user
from bn_study.loop import EpochReport, Members, TrainSpec, eager_step, evaluate, fit, new_state, targets
from bn_study.losses import member_loss
from bn_study.model import hidden_activation_names, seeded_models
from bn_study.optim import build_optimizer
from bn_study.probe import ActivationProbe
from bn_study.progress import TrainingProgress, bars_wanted
from bn_study.trial import TrialReporter, current_reporter
from bn_study.tracking import MemberRun, flatten, open_context, read_parent_file, resolve_tracking_uri
from bn_study.validate import member_seeds, resolve_device, validate_config

log = logging.getLogger("bn_study")


def member_config(cfg: DictConfig, seed: int) -> DictConfig:
    """The config a separately launched run of this member would have had."""
    one = OmegaConf.masked_copy(cfg, [k for k in cfg.keys() if k != "hydra"])
    one = OmegaConf.create(OmegaConf.to_container(one, resolve=True))
    one.seed, one.seeds = int(seed), None
    return one


def objective_value(reports: Sequence[EpochReport], failures: Sequence[str | None], metric: str,
                    direction: str) -> float:
    """The final epoch's metric, averaged over members; the worst possible value if any member failed."""
    worst = math.inf if direction == "minimize" else -math.inf
    if not reports or any(failures):
        return worst
    values = [m[metric] for m in reports[-1].metrics]
    return sum(values) / len(values)


def _epoch_line(report: EpochReport, epochs: int) -> str:
    def show(key: str) -> str:
        return " ".join(f"{m[key]:.4f}" for m in report.metrics)

    return (f"epoch {report.epoch}/{epochs}  train_loss {show('train_loss')}  val_loss {show('val_loss')}  "
            f"val_acc {show('val_acc')}  ({report.seconds:.2f} s)")


def run(cfg: DictConfig) -> float:
    # config: every user mistake is caught here, before data, model or MLflow are touched
    validate_config(cfg)
    job = JobContext.current()
    seeds = member_seeds(cfg)
    device = resolve_device(cfg.device)

    # data
    splits: Splits = load_splits(cfg.data.name, resolve_path(cfg.data.root, job.launch_dir), val=cfg.data.val,
                                 limit_train=cfg.data.limit_train, device=device, sources=list(cfg.data.sources))

    # model: one per seed, initialised exactly as its own run would be, trained together
    models = seeded_models(seeds, cfg.model, cfg.act, cfg.norm,
                           num_features=splits.num_features, num_classes=splits.num_classes)
    members = Members(models)
    members.net.to(device)
    optimizer = build_optimizer(members.net.parameters(), cfg.optimizer)
    state = new_state(members, optimizer, seeds)
    spec = TrainSpec(epochs=cfg.epochs, batch_size=cfg.batch_size, seeds=seeds, loss=cfg.loss.name,
                     shuffle=cfg.shuffle, log_every=cfg.log_every, drop_last=cfg.get("drop_last", False))
    step = eager_step(members, member_loss(cfg.loss.name), optimizer)

    # tracking: one MLflow run per member, children of the multirun's parent run
    parent = read_parent_file(job.sweep_dir) if job.sweep_dir else None
    uri = parent["tracking_uri"] if parent else resolve_tracking_uri(cfg.tracking.uri, job.launch_dir)
    ctx = open_context(uri, cfg.tracking.experiment, device=device, overrides=job.overrides,
                       multirun_dir=job.sweep_dir, parent_run_id=parent["run_id"] if parent else None,
                       base_overrides=parent.get("base_overrides", []) if parent else [],
                       extra_tags={"val_split": _val_split_note(cfg.data.val), "batched_seeds": str(len(seeds))})
    reporter = current_reporter()
    runs = []
    for seed in seeds:
        one = member_config(cfg, seed)
        # `report` describes the analysis of a study, not the run: it is no run parameter
        params = flatten({k: v for k, v in OmegaConf.to_container(one).items() if k != "report"})
        runs.append(MemberRun(ctx, seed=seed, params=params,
                              tags=reporter.tags() if reporter else {}, config_yaml=OmegaConf.to_yaml(one)))

    try:
        reports = _train_and_log(cfg, job, splits, members, state, spec, step, runs, reporter)
    except optuna.TrialPruned as exc:  # not a failure: the study's pruner stopped a hopeless trial
        for r in runs:
            r.finish(str(exc), status="KILLED", tags={"optuna_state": "PRUNED"})
        raise
    except KeyboardInterrupt:
        for r in runs:
            r.finish("interrupted (Ctrl-C)", status="KILLED")
        raise
    except BaseException as exc:  # a crash still ends every run, with the reason
        for r in runs:
            r.finish(f"{type(exc).__name__}: {exc}")
        raise
    for seed, r, failure in zip(seeds, runs, state.failures):
        r.finish(failure)
        if failure:
            log.error("run %s (seed %s) FAILED: %s", r.run_id, seed, failure)
    return objective_value(reports, state.failures, cfg.objective.metric, cfg.objective.direction)


def _val_split_note(val: str) -> str:
    return ("test (val_* metrics are measured on the 10 000 test images, as the Keras article's validation_data)"
            if val == "test" else "holdout (val_* metrics are on the last 10 000 training images)")


def _train_and_log(cfg: DictConfig, job: JobContext, splits: Splits, members: Members, state, spec: TrainSpec,
                   step, runs: list[MemberRun], reporter: TrialReporter | None) -> list[EpochReport]:
    probe = None
    if cfg.probe.enabled:
        probe = ActivationProbe(members.net, cfg.act.name, splits.val_x[: cfg.probe.samples])
        for r, stats in zip(runs, probe.measure(members, members.count)):
            r.log_metrics(stats, step=0)  # step 0 = before training
    steps_per_epoch = math.ceil(splits.train_x.shape[0] / spec.batch_size)
    bars = bars_wanted(cfg.progress, job.launcher)
    reports: list[EpochReport] = []
    with TrainingProgress(bars, spec.epochs, steps_per_epoch, " ".join(job.overrides) or "run") as progress:
        for report in fit(state, splits, spec, step, progress=progress.for_epoch):
            reports.append(report)
            stats = probe.measure(members, members.count) if probe else [{}] * members.count
            for k, r in enumerate(runs):
                good = [(s, v[k]) for s, v in report.step_losses if math.isfinite(v[k])]
                r.log_series("step_loss", good)
                if report.failures[k] is None:
                    r.log_metrics({**report.metrics[k], **stats[k]}, step=report.epoch)
            progress.epoch_done([m["val_acc"] for m in report.metrics])
            log.info(_epoch_line(report, spec.epochs))
            if reporter is not None and not any(report.failures):
                reporter.report(report.epoch, objective_value([report], report.failures, cfg.objective.metric,
                                                              cfg.objective.direction))
    _log_test_metrics(cfg, splits, members, state.failures, reports, runs)
    if cfg.tracking.figures:
        _log_figures(cfg, splits, members, probe, reports, runs)
    return reports


def _log_test_metrics(cfg: DictConfig, splits: Splits, members: Members, failures: Sequence[str | None],
                      reports: list[EpochReport], runs: list[MemberRun]) -> None:
    """``test_*`` at the end: the last ``val_*`` when validation was the test set; with a holdout split the
    test set is looked at only when ``final_test`` asks (never during tuning)."""
    if not reports:
        return
    if splits.val_split == "test":
        test = [(m["val_loss"], m["val_acc"]) for m in reports[-1].metrics]
    elif cfg.final_test:
        loss, acc = evaluate(members, targets(splits.test_x, splits.test_y, cfg.loss.name, splits.num_classes),
                             member_loss(cfg.loss.name))
        test = list(zip(loss.tolist(), acc.tolist()))
    else:
        return
    for k, r in enumerate(runs):
        if failures[k] is None:
            r.log_metrics({"test_loss": test[k][0], "test_acc": test[k][1]}, step=reports[-1].epoch)


def _log_figures(cfg: DictConfig, splits: Splits, members: Members, probe: ActivationProbe | None,
                 reports: list[EpochReport], runs: list[MemberRun]) -> None:
    outputs = None
    if cfg.model.show_record is not None:
        index = int(cfg.model.show_record)
        with torch.no_grad():
            members.net.eval()
            outputs = members(splits.test_x[index:index + 1].unsqueeze(0).expand(members.count, -1, -1))
            members.net.train()
        outputs = outputs[:, 0].cpu().numpy()
    for k, r in enumerate(runs):
        title = r.name
        history = [rep.metrics[k] for rep in reports if rep.failures[k] is None]
        if history:
            _save(r, figures.learning_curves(history, title), "curves.png")
        if probe is not None and probe.first is not None and probe.last is not None:
            _save(r, figures.activation_histograms(probe.first[k], probe.last[k], hidden_activation_names(members.template),
                                                   cfg.act.name, title), "activations.png")
        if outputs is not None:
            index = int(cfg.model.show_record)
            label = int(splits.test_y[index])
            _save(r, figures.record_outputs(outputs[k], label, index, title), f"record_{index}.png")
            r.log_text(" ".join(f"{v:.6f}" for v in outputs[k]) + "\n", f"record_{index}_outputs.txt")


def _save(r: MemberRun, fig, name: str) -> None:
    try:
        r.log_figure(fig, name)
    finally:
        figures.close(fig)


# An absolute path: Hydra reads a relative one as a Python package when the app is run with -m.
CONF_DIR = str(Path(__file__).resolve().parent.parent / "conf")


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="config")
def main(cfg: DictConfig) -> float:
    try:
        value = run(cfg)
    except UserError as err:
        exit_for_user(err)
        raise  # unreachable: exit_for_user raises SystemExit
    if math.isinf(value) and JobContext.current().sweep_dir is None:
        raise SystemExit(1)  # a single run that diverged: its run is FAILED in MLflow, say so to the shell
    return value
