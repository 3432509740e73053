"""The Hydra task: config → data → model → loop → tracking, and the objective back to the sweeper."""

from __future__ import annotations

import logging
import math
import traceback
from collections.abc import Iterable
from pathlib import Path

import hydra
import optuna
import torch
from mlflow.entities import Run
from omegaconf import DictConfig, OmegaConf

from bn_study.config.sources import conf_dir
from bn_study.train.checkpoint import Checkpoint, restore
from bn_study.data import load_splits
from bn_study.errors import UserError, exit_for_user
from bn_study.job import JobContext, resolve_path
from bn_study.train.engines import build_engine
from bn_study.train.loop import EpochReport, Members, TrainSpec, new_state
from bn_study.train.model import seeded_models
from bn_study.sweep.outcome import JobOutcome, worst_value
from bn_study.tracking.resume import config_hash, final_runs, job_hash, resumable_run_ids, reused_tag
from bn_study.tracking.naming import flatten
from bn_study.tracking.parent import read_parent_file
from bn_study.tracking.runs import MemberRun, RunContext, StoreError, open_context
from bn_study.tracking.store import resolve_tracking_uri
from bn_study.training import JobTraining, Resumed, objective_value
from bn_study.sweep.trial import current_reporter
from bn_study.config.rules import member_seeds, resolve_device, validate_config

log = logging.getLogger("bn_study")


def member_config(cfg: DictConfig, seed: int) -> DictConfig:
    """The config a separately launched run of this member would have had."""
    one = OmegaConf.masked_copy(cfg, [k for k in cfg.keys() if k != "hydra"])
    one = OmegaConf.create(OmegaConf.to_container(one, resolve=True))
    one.seed, one.seeds = int(seed), None
    return one


def resume_enabled(setting: object, job: JobContext) -> bool:
    """``resume=auto``: re-running a sweep continues it; a single run always trains afresh."""
    return job.sweep_dir is not None if setting == "auto" else bool(setting)


def open_job_context(cfg: DictConfig, job: JobContext, device: torch.device, members: int) -> RunContext:
    """Where this job's runs go: the multirun's parent run and store, or the configured store."""
    parent = read_parent_file(job.sweep_dir) if job.sweep_dir else None
    uri = parent["tracking_uri"] if parent else resolve_tracking_uri(cfg.tracking.uri, job.launch_dir)
    return open_context(uri, cfg.tracking.experiment, launch_dir=job.launch_dir, device=device, overrides=job.overrides,
                        multirun_dir=job.sweep_dir, parent_run_id=parent["run_id"] if parent else None,
                        base_overrides=parent.get("base_overrides", []) if parent else [],
                        extra_tags={"val_split": _val_split_note(cfg.data.val), "batched_seeds": str(members)})


def _val_split_note(val: str) -> str:
    return ("test (val_* metrics are measured on the 10 000 test images, as the Keras article's validation_data)"
            if val == "test" else "holdout (val_* metrics are on the last 10 000 training images)")


def stored_objective(runs: Iterable[Run], metric: str, direction: str) -> list[float]:
    """The objective of runs that finished earlier, as their final logged value."""
    return [r.data.metrics.get(metric, worst_value(direction)) if r.info.status == "FINISHED"
            else worst_value(direction) for r in runs]


def run(cfg: DictConfig) -> JobOutcome:
    # config: every user mistake is caught here, before data, model or MLflow are touched
    validate_config(cfg)
    job = JobContext.current()
    job.set_threads(cfg.threads, cfg.batch_size)
    device = resolve_device(cfg.device)
    seeds = member_seeds(cfg)
    configs = {seed: member_config(cfg, seed) for seed in seeds}
    hashes = {seed: config_hash(one) for seed, one in configs.items()}
    metric, direction = cfg.objective.metric, cfg.objective.direction

    # tracking, first: members whose runs already reached a result are not trained again
    ctx = open_job_context(cfg, job, device, len(seeds))
    resume = resume_enabled(cfg.resume, job)
    done = final_runs(ctx.client, ctx.experiment_id, hashes) if resume else {}
    todo = [seed for seed in seeds if seed not in done]
    if done and ctx.parent_run_id:  # this sweep's results include them: say so, for the report
        for r in done.values():
            ctx.client.set_tag(r.info.run_id, reused_tag(ctx.parent_run_id), "true")
    if not todo:
        ids = " ".join(r.info.run_id for r in done.values())
        log.info("skipped: every seed of this job already has a result in MLflow (runs %s)", ids)
        diverged = [r for r in done.values() if r.info.status != "FINISHED"]
        if diverged:  # an earlier run of this job diverged: a result, and still a failed job
            reason = diverged[0].data.tags.get("failure_reason", "diverged")
            return JobOutcome(worst_value(direction), "diverged", f"earlier run {diverged[0].info.run_id}: {reason}")
        values = stored_objective(done.values(), metric, direction)
        return JobOutcome(_mean_or_worst(values, direction), "skipped", f"runs {ids}")
    todo_hashes = [hashes[seed] for seed in todo]
    digest = job_hash(todo_hashes)
    checkpoint = Checkpoint(resolve_path(cfg.checkpoint_dir, job.launch_dir), digest)
    saved = checkpoint.load() if resume else None
    resume_ids = resumable_run_ids(ctx.client, saved, todo_hashes) if saved else None

    # data
    splits = load_splits(cfg.data.name, resolve_path(cfg.data.root, job.launch_dir), val=cfg.data.val,
                         limit_train=cfg.data.limit_train, device=device, sources=list(cfg.data.sources))

    # model: one per seed, initialised exactly as its own run would be, trained together
    models = seeded_models(todo, cfg.model, cfg.act, cfg.norm,
                           num_features=splits.num_features, num_classes=splits.num_classes)
    members = Members(models)
    optimizer, step = build_engine(cfg.engine, members, cfg.loss.name, cfg.optimizer, device)
    state = new_state(members, optimizer, todo)
    spec = TrainSpec(epochs=cfg.epochs, batch_size=cfg.batch_size, seeds=tuple(todo), loss=cfg.loss.name,
                     shuffle=cfg.shuffle, log_every=cfg.log_every, drop_last=cfg.drop_last)
    resumed = None
    if resume_ids and saved:
        restore(state, saved)
        resumed = Resumed([EpochReport(h["epoch"], h["seconds"], h["metrics"], [], h["failures"])
                           for h in saved["history"]], saved.get("probe_first"))
        log.info("resuming from the checkpoint after epoch %d (%s), runs %s", state.epoch, checkpoint.path,
                 " ".join(resume_ids))

    # tracking: one MLflow run per member (continued when resuming), children of the multirun's parent
    reporter = current_reporter()
    retry = float(cfg.tracking.retry_seconds)
    if resume_ids:
        runs = [MemberRun.attach(ctx.client, run_id, retry_seconds=retry) for run_id in resume_ids]
        if ctx.parent_run_id:
            for r in runs:
                ctx.client.set_tag(r.run_id, reused_tag(ctx.parent_run_id), "true")
    else:
        runs = []
        for seed in todo:
            one = configs[seed]
            # `report` describes the analysis of a study, not the run: it is no run parameter
            params = flatten({k: v for k, v in OmegaConf.to_container(one).items() if k != "report"})
            tags = {"config_hash": hashes[seed], **(reporter.tags() if reporter else {})}
            runs.append(MemberRun.create(ctx, seed=seed, params=params, tags=tags,
                                         config_yaml=OmegaConf.to_yaml(one), retry_seconds=retry))

    training = JobTraining(cfg, job, splits, state, spec, step, runs, reporter, checkpoint, digest, todo_hashes,
                           resumed)
    try:
        history = training.run()
    except optuna.TrialPruned as exc:  # not a failure: the study's pruner stopped a hopeless trial
        for r in runs:
            r.finish(str(exc), status="KILLED", outcome="pruned", tags={"optuna_state": "PRUNED"})
        checkpoint.delete()
        raise
    except KeyboardInterrupt:  # the checkpoint stays: re-running the command continues from it
        for r in runs:
            r.finish("interrupted (Ctrl-C)", status="KILLED", outcome="interrupted")
        raise
    except BaseException as exc:  # a crash still ends every run, with the reason and the traceback
        trace = traceback.format_exc()
        log.error("job crashed:\n%s", trace)
        for r in runs:
            try:
                r.log_text(trace, "traceback.txt")
            except StoreError as store:  # the artifact store is what broke: the reason tag still says why
                log.error("%s", store)
            r.finish(f"{type(exc).__name__}: {exc}", outcome="crashed")
        raise
    for seed, r, failure in zip(todo, runs, state.failures):
        r.finish(failure)
        if failure:
            log.error("run %s (seed %s) FAILED: %s", r.run_id, seed, failure)
    checkpoint.delete()

    value = objective_value(history, state.failures, metric, direction)
    values = [value] * len(todo) + stored_objective(done.values(), metric, direction)
    if any(state.failures):
        return JobOutcome(worst_value(direction), "diverged", "; ".join(f for f in state.failures if f))
    return JobOutcome(_mean_or_worst(values, direction), "resumed" if resumed else "finished")


def _mean_or_worst(values: list[float], direction: str) -> float:
    return sum(values) / len(values) if all(math.isfinite(v) for v in values) else worst_value(direction)


# An absolute path: Hydra reads a relative one as a Python package when the app is run with -m.
CONF_DIR = str(conf_dir())


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="config")
def main(cfg: DictConfig) -> float:
    try:
        outcome = run(cfg)
    except UserError as err:
        exit_for_user(err)
        raise  # unreachable: exit_for_user raises SystemExit
    if outcome.status == "diverged" and JobContext.current().sweep_dir is None:
        raise SystemExit(1)  # a single run that diverged: its run is FAILED in MLflow, say so to the shell
    return outcome
