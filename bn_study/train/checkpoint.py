"""Per-epoch checkpoints, so an interrupted job resumes where it stopped instead of starting over.

One file per job, named by the job's content hash, under ``checkpoint_dir`` (relative to the launch
dir): written atomically after each epoch's metrics reached MLflow, deleted when the job ends. It
holds everything the next epoch depends on — parameters, BN statistics, optimizer state, each
member's shuffle generator, the epoch counter — plus the MLflow run ids to continue and the metric
history the final figures need. Loaded with ``weights_only=True``: tensors and plain containers only.
"""

from __future__ import annotations

import io
import logging
from pathlib import Path
from dataclasses import dataclass
from typing import Any

import torch

from bn_study.errors import StoreError
from bn_study.util.disk import disk_problem
from bn_study.train.loop import EpochReport, TrainState
from bn_study.util.atomic import remove_stale_temps, write_atomic

log = logging.getLogger(__name__)


class Checkpoint:
    def __init__(self, directory: str | Path, job_hash: str) -> None:
        self.job_hash = job_hash
        self.path = Path(directory) / f"{job_hash}.pt"
        self.epoch = 0  # the epochs the file holds, as far as this process knows (saved or loaded)

    def save(self, payload: dict[str, Any]) -> None:
        remove_stale_temps(self.path)
        buffer = io.BytesIO()
        torch.save(payload, buffer)
        try:
            write_atomic(self.path, buffer.getvalue())
        except OSError as err:
            if not disk_problem(err):
                raise
            kept = (f"the checkpoint of epoch {self.epoch} is kept: after freeing space the same command resumes "
                    "from it") if self.path.exists() else "no earlier checkpoint: the same command trains it again"
            raise StoreError(f"cannot write the checkpoint of epoch {payload['epoch']} to {self.path}: "
                             f"{disk_problem(err)} ({kept})") from None
        self.epoch = int(payload["epoch"])

    def load(self) -> dict[str, Any] | None:
        """The saved state, or None when there is none or it cannot be read (then the job starts fresh)."""
        remove_stale_temps(self.path)
        if not self.path.exists():
            return None
        try:
            saved = torch.load(self.path, map_location="cpu", weights_only=True)
            if not isinstance(saved, dict):
                raise ValueError(f"it holds a {type(saved).__name__}, not a checkpoint")
            self.epoch = int(saved.get("epoch") or 0)
            return saved
        except Exception as err:  # truncated by a crash mid-write of an older version, or foreign
            log.warning("ignoring unreadable checkpoint %s (%s); starting the job fresh", self.path, err)
            return None

    def delete(self) -> None:
        self.path.unlink(missing_ok=True)
        try:  # the directory only exists for running jobs: the last one to end removes it
            self.path.parent.rmdir()
        except OSError:  # other jobs' checkpoints are still in it (or it is gone already)
            pass


def capture(state: Any, *, job_hash: str, member_hashes: list[str], run_ids: list[str],
            history: list[dict[str, Any]], probe_first: list[list[torch.Tensor]] | None) -> dict[str, Any]:
    """The training state after an epoch, as plain tensors and containers."""
    return {
        "format": FORMAT,
        "job_hash": job_hash,
        "member_hashes": member_hashes,
        "run_ids": run_ids,
        "epoch": state.epoch,
        "global_step": state.global_step,
        "failures": list(state.failures),
        "net": state.members.net.state_dict(),
        "optimizer": state.optimizer.state_dict(),
        "shufflers": [g.get_state() for g in state.shufflers],
        "history": history,
        "probe_first": probe_first,
    }


FORMAT = 2  # what ``capture`` writes; a checkpoint of another layout is another code version's: not resumed


def misfit(state: TrainState, payload: Any, epochs: int) -> str | None:
    """Why ``payload`` cannot continue this freshly built ``state`` for a run of ``epochs`` epochs (None: it
    can). Checked before anything is loaded: a half-applied ``load_state_dict`` would leave a mixed model."""
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        found = payload.get("format") if isinstance(payload, dict) else type(payload).__name__
        return f"it is of another code version (format {found!r}, this one writes {FORMAT})"
    epoch = payload.get("epoch")
    if not isinstance(epoch, int) or not 0 <= epoch <= epochs:
        return f"it holds epoch {epoch!r} of a {epochs}-epoch run"
    want = state.members.net.state_dict()
    net = payload.get("net") or {}
    if set(net) != set(want):
        return f"its model has other layers ({len(set(net) ^ set(want))} differ)"
    wrong = [k for k, v in want.items() if _shape(net[k]) != tuple(v.shape)]
    if wrong:
        return f"its model has other shapes ({wrong[0]}: {_shape(net[wrong[0]])} here {tuple(want[wrong[0]].shape)})"
    groups = (payload.get("optimizer") or {}).get("param_groups") or []
    mine = state.optimizer.param_groups
    if len(groups) != len(mine) or any(len(g["params"]) != len(m["params"]) for g, m in zip(groups, mine)):
        return "its optimizer holds other parameters"
    if len(payload.get("shufflers") or []) != len(state.shufflers):
        return f"it holds {len(payload.get('shufflers') or [])} members' shuffles, this job {len(state.shufflers)}"
    return None


def _shape(value: Any) -> tuple[int, ...]:
    return tuple(getattr(value, "shape", ()))  # a foreign file may hold anything where a tensor belongs


def restore(state: Any, payload: dict[str, Any]) -> None:
    """Put a captured state back into a freshly built one (same members, same optimizer)."""
    state.members.net.load_state_dict(payload["net"])
    state.optimizer.load_state_dict(payload["optimizer"])
    for generator, saved in zip(state.shufflers, payload["shufflers"]):
        generator.set_state(saved)
    state.epoch = int(payload["epoch"])
    state.global_step = int(payload["global_step"])
    state.failures = list(payload["failures"])


@dataclass
class Resumed:
    """What a checkpoint brings back besides the training state: the epochs already done (with the step
    probe's looks), and the probe's first look (before training) that the final figures compare against."""

    history: list[EpochReport]
    probe_first: list[list[Any]] | None

    @classmethod
    def restore(cls, state: TrainState, payload: dict[str, Any]) -> Resumed:
        restore(state, payload)
        return cls([EpochReport(h["epoch"], h["seconds"], h["metrics"], [], h["failures"], h.get("probes", []))
                    for h in payload["history"]], payload.get("probe_first"))
