"""Re-running a sweep: which members are already done, and which interrupted job to continue.

Every member run carries ``config_hash``: a content hash of the config a separate run of that member
would have (seed included; bookkeeping such as where runs are tracked, progress bars, engine and device
left out — they do not change what is measured). A member whose run ended FINISHED, or FAILED because
it diverged (a result, not an accident), is done and is not trained again. The others are trained;
when a checkpoint of exactly that set of members exists, training continues from it, into the same
MLflow runs.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

from mlflow import MlflowClient
from mlflow.entities import Run
from omegaconf import DictConfig, OmegaConf

NOT_HASHED = ("tracking", "progress", "resume", "checkpoint_dir", "report", "engine", "device")
FINAL_OUTCOMES = ("finished", "diverged")


def reused_tag(parent_run_id: str) -> str:
    """Tag on a run that a later sweep skipped (already done) or continued: it belongs to that sweep too."""
    return f"reused_in.{parent_run_id}"


def config_hash(member_cfg: DictConfig) -> str:
    data = OmegaConf.to_container(member_cfg, resolve=True)
    assert isinstance(data, dict)
    kept = {k: v for k, v in data.items() if k not in NOT_HASHED and k != "hydra"}
    return hashlib.sha256(json.dumps(kept, sort_keys=True, default=str).encode()).hexdigest()[:16]


def job_hash(member_hashes: Sequence[str]) -> str:
    return hashlib.sha256(" ".join(sorted(member_hashes)).encode()).hexdigest()[:16]


def is_final(run: Run) -> bool:
    if run.info.status == "FINISHED":
        return True
    return run.info.status == "FAILED" and run.data.tags.get("outcome") in FINAL_OUTCOMES


def final_runs(client: MlflowClient, experiment_id: str, hashes: Mapping[int, str]) -> dict[int, Run]:
    """Per seed, the newest run of that exact member config that already reached a result."""
    done: dict[int, Run] = {}
    for seed, digest in hashes.items():
        runs = client.search_runs([experiment_id], filter_string=f"tags.config_hash = '{digest}'",
                                  order_by=["attributes.start_time DESC"], max_results=50)
        final = [r for r in runs if is_final(r)]
        if final:
            done[seed] = final[0]
    return done


def resumable_run_ids(client: MlflowClient, checkpoint: Mapping[str, Any] | None,
                      hashes: Sequence[str]) -> list[str] | None:
    """The run ids to continue from ``checkpoint``, when it is this very job's and its runs still exist."""
    if not checkpoint or list(checkpoint.get("member_hashes", [])) != list(hashes):
        return None
    run_ids = list(checkpoint["run_ids"])
    for run_id in run_ids:
        try:
            run = client.get_run(run_id)
        except Exception:  # deleted from the store meanwhile: start fresh rather than half-resume
            return None
        if is_final(run) or run.info.lifecycle_stage != "active":
            return None
    return run_ids
