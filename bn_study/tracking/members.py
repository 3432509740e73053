"""A job's MLflow side: where its member runs go, which members an earlier run already finished, which
interrupted runs a checkpoint continues, and the lifecycle of the runs it trains — every one of them ends
FINISHED, FAILED or KILLED with its reason, whatever happens to the job."""

from __future__ import annotations

import contextlib
import logging
import math
import sys
import traceback
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

from mlflow.entities import Run
from omegaconf import OmegaConf

from bn_study.job import JobPlan
from bn_study.sweep.outcome import JobOutcome, objective_value, worst_value
from bn_study.sweep.trial import TrialReporter
from bn_study.tracking.claims import Heartbeat, Ledger, hold, sweep_to_watch
from bn_study.tracking.naming import flatten
from bn_study.tracking.owner import close_orphans, describe_owner, kill_run
from bn_study.tracking.parent import read_parent_file
from bn_study.tracking.resume import final_runs, job_hash, resumable_run_ids, reused_tag
from bn_study.errors import Interrupted, StoreError
from bn_study.util.disk import as_store_error
from bn_study.tracking.runs import MemberRun, RunContext, open_context
from bn_study.tracking.store import resolve_tracking_uri
from bn_study.util.redact import mask_userinfo
from bn_study.train.checkpoint import Checkpoint, Resumed, misfit
from bn_study.train.loop import EpochReport, TrainState

log = logging.getLogger("bn_study")


def _val_split_note(val: str) -> str:
    return ("test (val_* metrics are measured on the 10 000 test images, as the Keras article's validation_data)"
            if val == "test" else "holdout (val_* metrics are on the last 10 000 training images)")


def _open_context(plan: JobPlan, parent: dict | None) -> RunContext:
    """The multirun's parent run and store, or the configured store for a single run."""
    cfg, job = plan.cfg, plan.context
    own = resolve_tracking_uri(cfg.tracking.uri, job.launch_dir)
    # the parent file keeps the sweep's URI masked: this job's own is the same store when they mask alike
    uri = parent["tracking_uri"] if parent and mask_userinfo(own) != parent["tracking_uri"] else own
    return open_context(uri, cfg.tracking.experiment, launch_dir=job.launch_dir, device=plan.device,
                        overrides=job.overrides, multirun_dir=job.sweep_dir,
                        parent_run_id=parent["run_id"] if parent else None,
                        condition=plan.condition,
                        extra_tags={"val_split": _val_split_note(cfg.data.val), "batched_seeds": str(len(plan.seeds))})


def _is_pruned(exc: BaseException) -> bool:
    """An Optuna pruner stopped the trial (optuna is only ever loaded by a job that reports to a trial)."""
    optuna = sys.modules.get("optuna")
    return optuna is not None and isinstance(exc, optuna.TrialPruned)


def _report_lost_artifacts(runs: Iterable[Run]) -> None:
    """A finished run whose local artifact folder is gone (``mlruns/`` deleted or moved) is still a result and
    is not trained again, but it is said: its config and figures are no longer there."""
    for r in runs:
        uri = r.info.artifact_uri or ""
        if uri.startswith("file:"):
            folder = Path(unquote(urlparse(uri).path))
            if not folder.is_dir():
                log.warning("run %s is %s but its artifacts are gone (%s): its metrics count as this member's "
                            "result, its config.yaml and figures are lost; delete the run to train it again",
                            r.info.run_id, r.info.status, folder)


def resumes(plan: JobPlan) -> bool:
    """Whether this job continues what an earlier launch left: resume=auto does for a sweep (re-running it
    continues it), while a single run trains afresh unless resume=true."""
    cfg = plan.cfg
    return plan.context.sweep_dir is not None if cfg.resume == "auto" else bool(cfg.resume)


@dataclass
class MemberTracking:
    plan: JobPlan
    ctx: RunContext
    reporter: TrialReporter | None
    done: dict[int, Run]  # per seed: a run of that exact member config that already reached a result
    todo: list[int]  # the seeds to train
    checkpoint: Checkpoint
    saved: dict | None  # this job's checkpoint, when its runs can be continued
    ledger: Ledger
    alive: contextlib.ExitStack  # this process's heartbeat and this job's claims, until the job ends
    held_by: str | None = None  # another live launch trains this job's members (the sweeper defers it)

    @classmethod
    def open(cls, plan: JobPlan, reporter: TrialReporter | None) -> MemberTracking:
        cfg, job = plan.cfg, plan.context
        parent = read_parent_file(job.sweep_dir) if job.sweep_dir else None
        ctx = _open_context(plan, parent)
        ledger = Ledger.open(ctx.client, ctx.uri, float(cfg.tracking.stale_after_seconds))
        alive = contextlib.ExitStack()
        watch = sweep_to_watch((parent or {}).get("owner"), plan.context.launcher)
        alive.enter_context(Heartbeat.held(ledger, float(cfg.tracking.heartbeat_seconds), watch))
        alive.callback(ledger.release)
        try:
            return cls._open(plan, reporter, ctx, ledger, alive, parent)
        except BaseException:
            alive.close()
            raise

    @classmethod
    def _open(cls, plan: JobPlan, reporter: TrialReporter | None, ctx: RunContext, ledger: Ledger,
              alive: contextlib.ExitStack, parent: dict | None) -> MemberTracking:
        cfg, job = plan.cfg, plan.context
        resume = resumes(plan)
        done = final_runs(ctx.client, ctx.experiment_id, plan.hashes) if resume else {}
        todo = [seed for seed in plan.seeds if seed not in done]
        if resume and todo:  # two launches of one grid: each member is trained by the one that claims it
            defer = (parent or {}).get("on_held") == "defer"
            held_by = hold(ledger, ctx.experiment_id, [plan.hashes[s] for s in todo], defer=defer,
                           poll_seconds=float(cfg.tracking.heartbeat_seconds))
            if held_by is not None:
                return cls(plan, ctx, reporter, done, todo, Checkpoint(job.path(cfg.checkpoint_dir), ""), None,
                           ledger, alive, held_by)
            # finished by another launch between the first look and the claim
            done.update(final_runs(ctx.client, ctx.experiment_id, {s: plan.hashes[s] for s in todo}))
        if done and ctx.parent_run_id:  # this sweep's results include them: say so, for the report
            for r in done.values():
                ctx.client.set_tag(r.info.run_id, reused_tag(ctx.parent_run_id), "true")
        _report_lost_artifacts(done.values())
        todo = [seed for seed in plan.seeds if seed not in done]
        todo_hashes = [plan.hashes[s] for s in todo]
        checkpoint = Checkpoint(job.path(cfg.checkpoint_dir), job_hash(todo_hashes))
        saved = checkpoint.load() if resume and todo else None
        if saved and not resumable_run_ids(ctx.client, saved, todo_hashes):
            saved = None
        if resume:  # a killed earlier launch's runs of these members that its checkpoint does not continue
            continued = set(saved["run_ids"]) if saved else set()
            stale = [r for digest in set(todo_hashes) for r in ctx.client.search_runs(
                [ctx.experiment_id], filter_string=f"tags.config_hash = '{digest}' and attributes.status = 'RUNNING'")
                if r.info.run_id not in continued]
            close_orphans(ctx.client, stale, "left RUNNING by a launch that was killed; closed by a later one, "
                                             "which trains this member again", gone=ledger.gone)
        return cls(plan, ctx, reporter, done, todo, checkpoint, saved, ledger, alive)

    def __enter__(self) -> MemberTracking:
        return self

    def __exit__(self, *exc: object) -> None:
        self.alive.close()  # this job's claims released; the heartbeat stops unless a sweep still needs it

    @property
    def todo_hashes(self) -> list[str]:
        return [self.plan.hashes[seed] for seed in self.todo]

    def resume_into(self, state: TrainState) -> Resumed | None:
        """The checkpoint's training state put into ``state``, when this job was interrupted before."""
        if self.saved is None:
            return None
        problem = misfit(state, self.saved, int(self.plan.cfg.epochs))
        if problem is not None:
            self._discard_checkpoint(problem)
            return None
        resumed = Resumed.restore(state, self.saved)
        log.info("resuming from the checkpoint after epoch %d (%s), runs %s", state.epoch, self.checkpoint.path,
                 " ".join(self.saved["run_ids"]))
        return resumed

    def _discard_checkpoint(self, problem: str) -> None:
        """A checkpoint that cannot continue this job: said in one line, its runs closed, training starts again."""
        assert self.saved is not None
        stale = list(self.saved.get("run_ids") or [])
        log.warning("discarding the checkpoint %s: %s; its run%s %s closed as KILLED, the job starts again",
                    self.checkpoint.path, problem, "s" if len(stale) != 1 else "", ", ".join(stale) or "(none)")
        for run_id in stale:
            try:
                kill_run(self.ctx.client, run_id, f"checkpoint discarded: {problem}")
            except Exception as err:  # gone from the store: nothing left to close
                log.debug("could not close stale run %s: %s", run_id, err)
        self.checkpoint.delete()
        self.saved = None

    def _start_runs(self) -> list[MemberRun]:
        ctx, retry = self.ctx, float(self.plan.cfg.tracking.retry_seconds)
        if self.saved is not None:
            runs = [MemberRun.attach(ctx.client, run_id, retry_seconds=retry) for run_id in self.saved["run_ids"]]
            if ctx.parent_run_id:
                for r in runs:
                    ctx.client.set_tag(r.run_id, reused_tag(ctx.parent_run_id), "true")
            return runs
        runs = []
        for seed in self.todo:
            one = self.plan.configs[seed]
            # `report` describes the analysis of a study, not the run: it is no run parameter
            params = flatten({k: v for k, v in OmegaConf.to_container(one).items() if k != "report"})
            tags = {"config_hash": self.plan.hashes[seed], **(self.reporter.tags() if self.reporter else {})}
            runs.append(MemberRun.create(ctx, seed=seed, params=params, tags=tags,
                                         config_yaml=OmegaConf.to_yaml(one), retry_seconds=retry))
        return runs

    @contextlib.contextmanager
    def member_runs(self, state: TrainState) -> Iterator[list[MemberRun]]:
        """The members' runs (created, or attached when resuming), ended whatever the training does:
        pruned → KILLED (checkpoint gone), Ctrl-C → KILLED (checkpoint kept, to continue), a crash →
        FAILED with its traceback; else FINISHED, or FAILED with the reason a member diverged."""
        runs = self._start_runs()
        if self.reporter is not None:
            self.reporter.record_runs([r.run_id for r in runs])
        try:
            yield runs
        except KeyboardInterrupt:  # the checkpoint stays: re-running the command continues from it
            for r in runs:
                r.finish("interrupted (Ctrl-C)", status="KILLED", outcome="interrupted")
            ids = ", ".join(r.run_id for r in runs)
            again = "the same command" if resumes(self.plan) else "the same command with resume=true"
            kept = self.checkpoint.epoch  # what a rerun continues from: the last epoch the checkpoint holds
            goes_on = f"continues after epoch {kept}" if kept else "starts it again"
            raise Interrupted(f"stopped with {kept} of {self.plan.cfg.epochs} epochs saved, "
                              f"run{'s' if len(runs) > 1 else ''} {ids} KILLED; {again} {goes_on}") from None
        except BaseException as exc:
            if _is_pruned(exc):  # not a failure: the study's pruner stopped a hopeless trial
                for r in runs:
                    r.finish(str(exc), status="KILLED", outcome="pruned", tags={"optuna_state": "PRUNED"})
                self.checkpoint.delete()
                raise
            store = as_store_error(exc, self.ctx.client.tracking_uri)
            if store is not None:  # a full or read-only disk: one line says what, where, and what became of each run
                raise StoreError("; ".join([str(store), *(r.fail(str(store)) for r in runs)])) from None
            trace = traceback.format_exc()
            log.error("job crashed:\n%s", trace)
            for r in runs:
                try:
                    r.log_text(trace, "traceback.txt")
                except StoreError as store:  # the artifact store is what broke: the reason tag still says why
                    log.error("%s", store)
                r.finish(f"{type(exc).__name__}: {exc}", outcome="crashed")
            raise
        for seed, r, failure in zip(self.todo, runs, state.failures):
            r.finish(failure)
            if failure:
                log.error("run %s (seed %s) FAILED: %s", r.run_id, seed, failure)
        self.checkpoint.delete()

    # -- what the job hands back to its sweeper -----------------------------------------------------

    def _stored_objective(self, runs: Iterable[Run]) -> list[float]:
        """The objective of runs that finished earlier, as their final logged value."""
        metric, direction = self.plan.cfg.objective.metric, self.plan.cfg.objective.direction
        return [r.data.metrics.get(metric, worst_value(direction)) if r.info.status == "FINISHED"
                else worst_value(direction) for r in runs]

    def outcome_of_done(self) -> JobOutcome:
        """Every member of this job already has a result in MLflow, or another live launch trains them
        (held): nothing is trained here."""
        direction = self.plan.cfg.objective.direction
        if self.held_by is not None:
            log.info("deferred: another launch (%s) trains this job's members; this sweep comes back to it at "
                     "the end", describe_owner(self.held_by))
            return JobOutcome(worst_value(direction), "held", f"trained by {describe_owner(self.held_by)}")
        ids = " ".join(r.info.run_id for r in self.done.values())
        log.info("skipped: every seed of this job already has a result in MLflow (runs %s)", ids)
        diverged = [r for r in self.done.values() if r.info.status != "FINISHED"]
        if diverged:  # an earlier run of this job diverged: a result, and still a failed job
            reason = diverged[0].data.tags.get("failure_reason", "diverged")
            return JobOutcome(worst_value(direction), "diverged", f"earlier run {diverged[0].info.run_id}: {reason}")
        return JobOutcome(_mean_or_worst(self._stored_objective(self.done.values()), direction), "skipped",
                          f"runs {ids}")

    def closing_line(self, runs: Sequence[MemberRun], history: Sequence[EpochReport],
                     failures: Sequence[str | None]) -> str:
        from bn_study.ui import closing_line

        last = history[-1] if history else None
        return closing_line([r.run_id for r in runs], list(failures), last.metrics if last else None,
                            mask_userinfo(self.ctx.uri), self.ctx.experiment_id, last.epoch if last else 0)

    def outcome(self, history: Sequence[EpochReport], failures: Sequence[str | None],
                resumed: Resumed | None) -> JobOutcome:
        metric, direction = self.plan.cfg.objective.metric, self.plan.cfg.objective.direction
        if any(failures):
            return JobOutcome(worst_value(direction), "diverged", "; ".join(f for f in failures if f))
        value = objective_value(history, failures, metric, direction)
        values = [value] * len(self.todo) + self._stored_objective(self.done.values())
        return JobOutcome(_mean_or_worst(values, direction), "resumed" if resumed else "finished")


def _mean_or_worst(values: list[float], direction: str) -> float:
    return sum(values) / len(values) if all(math.isfinite(v) for v in values) else worst_value(direction)
