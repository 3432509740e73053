"""Optuna trials left RUNNING by a search process that is gone (``kill -9``, a lost machine): failed with the
reason and queued once more with their params. Optuna's own heartbeat covers its RDB storage only, not a
journal file (this project's default storage), and only a study driven by ``study.optimize``, so each trial
carries its owner process instead, judged by its pid on this host and by its heartbeat from another."""

from __future__ import annotations

import logging
from collections.abc import Callable

import optuna
from optuna.trial import TrialState

from bn_study.tracking.owner import OWNER_TAG, owner_gone, this_owner

log = logging.getLogger(__name__)


def claim(trial: optuna.Trial) -> None:
    """Mark ``trial`` as this process's: a later search fails and retries it if this process dies."""
    trial.set_user_attr(OWNER_TAG, this_owner())


def retry_orphaned_trials(study: optuna.Study, gone: Callable[[str | None], bool] = owner_gone) -> list[int]:
    """FAIL each RUNNING trial whose owner is gone, and queue its params again once (a retry is not retried).
    ``gone``: how an owner is judged; the sweep's ledger (bn_study.tracking.claims) knows other hosts too."""
    failed = []
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if not gone(t.user_attrs.get(OWNER_TAG)):
            continue
        study._storage.set_trial_user_attr(t._trial_id, "failure_reason",
                                           "its search process is gone; failed by a later search")
        study.tell(t.number, state=TrialState.FAIL, skip_if_finished=True)
        failed.append(t.number)
        if "retry_of" not in t.user_attrs:
            study.enqueue_trial(t.params, user_attrs={"retry_of": t.number}, skip_if_exists=False)
    if failed:
        log.warning("study %r: trial%s %s left RUNNING by a search process that is gone: failed, and queued "
                    "again once", study.study_name, "s" if len(failed) > 1 else "", ", ".join(map(str, failed)))
    return failed
