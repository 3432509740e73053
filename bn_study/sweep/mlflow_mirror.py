"""The Optuna sweep in MLflow: one parent run per invocation, each trial's runs its children.

The jobs tag their own runs (``optuna_study``, ``optuna_trial``, ``stage``, ``arm``: see
``bn_study.sweep.trial``); once a trial is told, its state (COMPLETE, PRUNED, FAIL) is mirrored here onto
those runs as the tag ``optuna_state``. At the end the parent gets each study's best params and value,
``optimization_results.yaml``, and Optuna's optimization-history and parameter-importance figures.
"""

import logging
import math
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import optuna
from mlflow.entities import Metric, Param, RunTag
from omegaconf import DictConfig, OmegaConf
from optuna.trial import TrialState

from bn_study.sweep.results import readable_number
from bn_study.tracking.parent import ParentRun, sweep_description
from bn_study.util.names import slug
from bn_study.util.redact import mask_userinfo

log = logging.getLogger(__name__)


class SweepTracking:
    def __init__(self, config: DictConfig, tags: Mapping[str, str]) -> None:
        self.parent = ParentRun(config, sweep_description(list(config.hydra.overrides.task)), tags)
        self.client = self.parent.client
        self.objective = str(config.objective.metric)

    def final_metrics(self, study_name: str) -> dict[str, Any]:
        """The final stage's runs of ``study_name`` and what they measured, under explicit names — the
        objective again (on the split the study tuned on) and the test set — each the mean over the runs'
        seeds; also logged on the parent as ``final/<arm>/test_acc`` …"""
        runs = [r for r in self.parent.children() if r.data.tags.get("stage") == "final"
                and r.data.tags.get("optuna_study") == study_name and r.info.status == "FINISHED"]
        if not runs:
            return {}

        def mean(key: str) -> float | None:
            values = [r.data.metrics[key] for r in runs if key in r.data.metrics]
            return math.fsum(values) / len(values) if values else None

        objective = {self.objective: mean(self.objective)}
        test = {k: mean(k) for k in ("test_acc", "test_loss") if mean(k) is not None}
        arm = runs[0].data.tags.get("arm")
        prefix = f"final/{slug(arm, equals='-', fallback='')}/" if arm else "final/"
        self.client.log_batch(self.run_id, metrics=[Metric(f"{prefix}{k}", float(v), 0, 0)
                                                    for k, v in {**objective, **test}.items() if v is not None])
        self.client.set_tag(self.run_id, f"{prefix}runs", " ".join(r.info.run_id for r in runs))
        rounded = {k: readable_number(v) for k, v in {**objective, **test}.items()}
        return {"runs": sorted(r.info.run_id for r in runs),
                "objective": {self.objective: rounded[self.objective]},
                "test": {k: rounded[k] for k in test}}

    @property
    def run_id(self) -> str:
        return self.parent.run_id

    def mirror_states(self, study_name: str, states: Mapping[int, TrialState]) -> None:
        """Tag each told trial's runs with its Optuna state."""
        if not states:
            return
        for run in self.parent.children():
            tags = run.data.tags
            if tags.get("optuna_study") != study_name or tags.get("stage", "tune") != "tune":
                continue
            number = tags.get("optuna_trial")
            if number is not None and number.isdigit() and int(number) in states:
                state = states[int(number)].name
                if tags.get("optuna_state") != state:
                    self.client.set_tag(run.info.run_id, "optuna_state", state)

    def log_study(self, study: optuna.Study, arm: str | None, figures: bool = True) -> None:
        """Best params and value of ``study`` on the parent, and its figures."""
        prefix = slug(arm, equals="-", fallback="") + "/" if arm else ""
        try:
            best = study.best_trial
        except ValueError:  # no completed trial (multi-objective studies have no single best either)
            best = None
        if best is not None:
            params = [Param(f"best/{prefix}{k}"[:250], str(v)[:6000]) for k, v in best.params.items()]
            metrics = [Metric(f"best_value/{prefix}".rstrip("/"), float(best.value), 0, 0)] \
                if best.value is not None and math.isfinite(best.value) else []
            tags = [RunTag(f"best_trial/{prefix}".rstrip("/"), str(best.number))]
            self.client.log_batch(self.run_id, params=params, metrics=metrics, tags=tags)
        if figures:
            self._log_figures(study, prefix)

    def _log_figures(self, study: optuna.Study, prefix: str) -> None:
        from optuna.visualization import matplotlib as ovm

        from bn_study.tracking import figures  # sets the non-interactive backend

        complete = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))]
        if not complete:
            log.info("no completed trial in study %r yet: no figures", study.study_name)
            return
        plots = [("optimization_history.png", ovm.plot_optimization_history)]
        searched = {name for t in complete for name in t.distributions}
        if len(complete) >= 2 and len(searched) >= 2 and len(study.directions) == 1:
            plots.append(("param_importances.png", ovm.plot_param_importances))
        else:
            log.info("study %r: no parameter-importance figure (it needs 2 completed trials and 2 searched "
                     "params; it has %d and %d)", study.study_name, len(complete), len(searched))
        for name, plot in plots:
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # Optuna marks its matplotlib plots experimental
                    ax = plot(study)
                fig = _figure_of(ax)
                fig.set_size_inches(8, 4.5)
                fig.tight_layout()  # Optuna's plots clip long parameter names and the legend otherwise
                try:
                    self.client.log_figure(self.run_id, fig, f"{prefix}{name}")
                finally:
                    figures.close(fig)
            except Exception as err:  # a figure is a nicety: never fail the sweep over it
                log.warning("could not draw %s for study %r: %s", name, study.study_name, err)

    def log_results(self, results: Mapping[str, Any]) -> None:
        self.client.log_text(self.run_id, mask_userinfo(OmegaConf.to_yaml(OmegaConf.create(dict(results)))),
                             "optimization_results.yaml")

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        self.parent.set_tags({k: str(v) for k, v in tags.items()})

    def finish(self, failed: bool) -> None:
        self.parent.finish(failed=failed)

    def interrupted(self) -> None:
        self.parent.interrupted()


def _figure_of(ax: Any) -> Any:
    if isinstance(ax, Sequence) or hasattr(ax, "flat"):  # some plots return an array of axes
        ax = list(getattr(ax, "flat", ax))[0]
    return ax.figure
