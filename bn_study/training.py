"""One job's training, epoch by epoch: each epoch's numbers go to the members' MLflow runs, the probe
looks at the hidden layers, a checkpoint is written, the Optuna trial hears the objective; at the end
come the test metrics and the figures."""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch
from omegaconf import DictConfig

from bn_study.data import Splits
from bn_study.data.catalog import DATASETS
from bn_study.job import JobPlan
from bn_study.sweep.outcome import objective_value
from bn_study.tracking import figures
from bn_study.tracking.members import MemberTracking
from bn_study.tracking.naming import fit_run_name, readable
from bn_study.tracking.runs import MemberRun
from bn_study.train.checkpoint import Resumed, capture
from bn_study.train.loop import EpochReport, TrainSpec, TrainState, evaluate, fit, targets
from bn_study.train.losses import member_loss
from bn_study.train.members import Members
from bn_study.train.model import hidden_activation_names
from bn_study.train.probe import PERCENTILES, ActivationProbe, PreActivationProbe, pre_activation_name
from bn_study.train.step import StepFn
from bn_study.ui import TrainingProgress, bars_wanted

if TYPE_CHECKING:  # optuna is loaded only by a job that reports to a trial
    from bn_study.sweep.trial import TrialReporter

log = logging.getLogger("bn_study")


def train_spec(cfg: DictConfig, seeds: Sequence[int]) -> TrainSpec:
    return TrainSpec(epochs=cfg.epochs, batch_size=cfg.batch_size, seeds=tuple(seeds), loss=cfg.loss.name,
                     shuffle=cfg.shuffle, log_every=cfg.log_every, drop_last=cfg.drop_last,
                     max_steps=cfg.max_steps)


@dataclass
class JobTraining:
    plan: JobPlan
    tracking: MemberTracking
    splits: Splits
    state: TrainState
    step: StepFn
    runs: list[MemberRun]
    resumed: Resumed | None = None
    history: list[EpochReport] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.cfg, self.job, self.reporter = self.plan.cfg, self.plan.context, self.tracking.reporter
        self.spec = train_spec(self.cfg, self.tracking.todo)

    @property
    def members(self) -> Members:
        return self.state.members

    def run(self) -> list[EpochReport]:
        cfg, members = self.cfg, self.members
        probe = ActivationProbe(members.net, cfg.act.name, self.splits.val_x[: cfg.probe.samples]) \
            if cfg.probe.enabled else None
        pre = PreActivationProbe(members, self.splits.val_x[: cfg.probe.samples], cfg.probe.units,
                                 cfg.probe.every_steps) if cfg.probe.enabled and cfg.probe.every_steps else None
        self.history = list(self.resumed.history) if self.resumed else []
        # a resumed run may already hold the epoch that was running when the job died
        logged_epochs = [r.logged_steps("val_acc") if self.resumed else set() for r in self.runs]
        logged_steps = [max(r.logged_steps("step_loss") or {0}) if self.resumed else 0 for r in self.runs]
        # per metric: a job killed halfway through sending an epoch's batches left each name's own prefix
        logged_pre = [{n: max(r.logged_steps(n) or {-1}) for n in pre.names} if self.resumed and pre else {}
                      for r in self.runs]
        if probe is not None:
            if self.resumed and self.resumed.probe_first is not None:
                probe.first = [[t.numpy() for t in layers] for layers in self.resumed.probe_first]
            else:
                for r, stats in zip(self.runs, probe.measure(members, members.count)):
                    r.log_metrics(stats, step=0)  # step 0 = before training

        n, has_bn = self.splits.train_x.shape[0], members.has_batch_norm
        epochs = self.spec.planned_epochs(n, has_bn)
        bars = bars_wanted(cfg.progress, self.job.launcher)
        label = progress_label(self.plan.condition, self.reporter)
        with TrainingProgress(bars, epochs, lambda e: self.spec.steps_in_epoch(e, n, has_bn), label) as progress:
            for report in fit(self.state, self.splits, self.spec, self.step, progress=progress.for_epoch, probe=pre):
                self.history.append(report)
                stats = probe.measure(members, members.count) if probe else [{}] * members.count
                for k, r in enumerate(self.runs):
                    if report.epoch in logged_epochs[k]:
                        continue
                    r.log_series("step_loss", [(s, v[k]) for s, v in report.step_losses
                                               if s > logged_steps[k] and math.isfinite(v[k])])
                    for s, values in report.probes:
                        fresh = {n: v for n, v in values[k].items()
                                 if s > logged_pre[k].get(n, -1) and math.isfinite(v)}
                        if fresh:
                            r.log_metrics(fresh, step=s)
                    if report.failures[k] is None:
                        r.log_metrics({**report.metrics[k], **stats[k]}, step=report.epoch)
                self._save_checkpoint(probe)
                progress.epoch_done([m["val_acc"] for m in report.metrics])
                log.info(epoch_line(report, epochs))
                if self.reporter is not None and not any(report.failures):
                    self.reporter.report(report.epoch, objective_value([report], report.failures,
                                                                       cfg.objective.metric, cfg.objective.direction))
        fallback = getattr(self.step, "fallback", None)  # engine=graph gave up its CUDA graphs: say so on the runs
        if fallback:
            for r in self.runs:
                r.set_tags({"engine_fallback": f"eager after the CUDA graph failed: {fallback}"})
        if probe is not None and probe.last is None:  # resumed after its last epoch: the figures need a look
            probe.measure(members, members.count)
        self._log_test_metrics()
        if cfg.tracking.figures:
            self._log_figures(probe, pre)
        return self.history

    def _save_checkpoint(self, probe: ActivationProbe | None) -> None:
        first = None
        if probe is not None and probe.first is not None:
            first = [[torch.from_numpy(a) for a in layers] for layers in probe.first]
        history = [{"epoch": r.epoch, "seconds": r.seconds, "metrics": r.metrics, "failures": r.failures,
                    "probes": r.probes} for r in self.history]
        self.tracking.checkpoint.save(capture(self.state, job_hash=self.tracking.checkpoint.job_hash,
                                              member_hashes=self.tracking.todo_hashes,
                                              run_ids=[r.run_id for r in self.runs], history=history,
                                              probe_first=first))

    def _log_test_metrics(self) -> None:
        """``test_*`` at the end: the last ``val_*`` when validation was the test set; with a holdout split
        the test set is looked at only when ``final_test`` asks (never during tuning)."""
        cfg, splits, history = self.cfg, self.splits, self.history
        if not history:
            return
        if splits.val_split == "test":
            test = [(m["val_loss"], m["val_acc"]) for m in history[-1].metrics]
        elif cfg.final_test:
            loss, acc = evaluate(self.members, targets(splits.test_x, splits.test_y, cfg.loss.name,
                                                       splits.num_classes), member_loss(cfg.loss.name))
            test = list(zip(loss.tolist(), acc.tolist()))
        else:
            return
        for k, r in enumerate(self.runs):
            # a job killed after this line and resumed with no epoch left must not log it a second time
            if self.state.failures[k] is None and not (self.resumed and history[-1].epoch in r.logged_steps("test_acc")):
                r.log_metrics({"test_loss": test[k][0], "test_acc": test[k][1]}, step=history[-1].epoch)

    def _log_figures(self, probe: ActivationProbe | None, pre: PreActivationProbe | None) -> None:
        cfg, splits, members = self.cfg, self.splits, self.members
        outputs = None
        if cfg.model.show_record is not None:
            index = int(cfg.model.show_record)
            with torch.no_grad():
                members.net.eval()
                outputs = members(splits.test_x[index:index + 1].unsqueeze(0).expand(members.count, -1, -1))
                members.net.train()
            outputs = outputs[:, 0].cpu().numpy()
        layer_names = hidden_activation_names(members.template)
        known = DATASETS.get(splits.name)
        classes = known.classes if known else None
        for k, r in enumerate(self.runs):
            history = [rep.metrics[k] for rep in self.history if rep.failures[k] is None]
            if history:
                _save(r, figures.learning_curves(history, r.name, str(cfg.data.val)), "curves.png")
            if probe is not None and probe.first is not None and probe.last is not None:
                _save(r, figures.activation_histograms(probe.first[k], probe.last[k], layer_names, cfg.act.name,
                                                       r.name), "activations.png")
            looks = [(s, values[k]) for rep in self.history for s, values in rep.probes]
            if pre is not None and looks:
                series = {"": _percentile_series(pre, looks)}  # one row: this run
                _save(r, figures.pre_activation_percentiles(series, cfg.act.name, r.name), "preactivations.png")
            if outputs is not None:
                index = int(cfg.model.show_record)
                label = int(splits.test_y[index])
                _save(r, figures.record_outputs(outputs[k], label, index, r.name, classes), f"record_{index}.png")
                r.log_text(" ".join(f"{v:.6f}" for v in outputs[k]) + "\n", f"record_{index}_outputs.txt")


def _percentile_series(pre: PreActivationProbe, looks: Sequence[tuple[int, dict[str, float]]],
                       ) -> dict[str, dict[int, figures.Percentiles]]:
    """One member's looks as the figure draws them: per layer, per unit, the steps and each percentile."""
    steps = [s for s, _ in looks]
    return {layer: {u: figures.Percentiles(steps, *([v[pre_activation_name(layer, u, p)] for _, v in looks]
                                                    for p in PERCENTILES))
                    for u in units}
            for layer, units in pre.units.items()}


def _save(r: MemberRun, fig: Any, name: str) -> None:
    try:
        r.log_figure(fig, name)
    finally:
        figures.close(fig)


def epoch_line(report: EpochReport, epochs: int) -> str:
    def show(key: str) -> str:
        return " ".join(f"{m[key]:.4f}" for m in report.metrics)

    return (f"epoch {report.epoch}/{epochs}  train_loss {show('train_loss')}  val_loss {show('val_loss')}  "
            f"val_acc {show('val_acc')}  ({report.seconds:.2f} s)")


# the bar's label: short enough that its count, loss and time left fit a 120-column terminal
LABEL_WIDTH = 40


def progress_label(condition: str, reporter: TrialReporter | None = None) -> str:
    """``trial 7`` / ``final (trial 7)`` for an Optuna job, else the condition as people read it, cut."""
    if reporter is not None:
        return f"trial {reporter.number}" if reporter.stage == "tune" else f"final (trial {reporter.number})"
    return fit_run_name(readable(condition), LABEL_WIDTH)
