"""Who runs a run: the host, the pid and that process's start time, tagged on every member run and sweep
parent. A later launch that meets a RUNNING run whose process is gone (killed, its machine restarted) closes
it as KILLED with the reason instead of leaving it pretending to run. Whether another host's process still
runs is told by its heartbeat (bn_study.tracking.claims)."""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable, Iterable

from mlflow import MlflowClient
from mlflow.entities import Run, RunTag

from bn_study.util.redact import mask_userinfo

log = logging.getLogger(__name__)

OWNER_TAG = "owner"


def _start_ticks(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (Linux), which tells a reused pid from the original."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read().decode(errors="replace")
    except OSError:
        return None
    return stat.rsplit(")", 1)[-1].split()[19]  # field 22; the name in parentheses may hold spaces


def this_owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{_start_ticks(os.getpid()) or '?'}"


def _parts(owner: str | None) -> tuple[str, str, str] | None:
    """(host, pid, ticks); None for a run from before owners were tagged, or a tag that is no owner."""
    if not owner or owner.count(":") < 2:
        return None
    host, pid, ticks = owner.rsplit(":", 2)  # a host name holds no colon; an IPv6-like one keeps its own
    return host, pid, ticks


def owner_host(owner: str | None) -> str | None:
    parts = _parts(owner)
    return parts[0] if parts else None


def describe_owner(owner: str | None) -> str:
    """``host:pid:ticks`` as a person reads it: "process 123 on host"."""
    parts = _parts(owner)
    return f"process {parts[1]} on {parts[0]}" if parts else "an unknown process"


def owner_gone(owner: str | None) -> bool:
    """True only when the owner was this host's process and that process no longer exists."""
    parts = _parts(owner)
    if parts is None:
        return False  # unknown
    host, pid, ticks = parts
    if host != socket.gethostname() or not pid.isdigit() or ticks == "?":
        return False
    return _start_ticks(int(pid)) != ticks


def kill_run(client: MlflowClient, run_id: str, reason: str, outcome: str | None = None) -> None:
    """End a run no process will finish as KILLED, saying why (``failure_reason``, and ``outcome`` if given)."""
    tags = [RunTag("failure_reason", mask_userinfo(reason))] + ([RunTag("outcome", outcome)] if outcome else [])
    client.log_batch(run_id, tags=tags)
    client.set_terminated(run_id, "KILLED")


def close_orphans(client: MlflowClient, runs: Iterable[Run], reason: str,
                  gone: Callable[[str | None], bool] = owner_gone) -> list[str]:
    """Close the given runs that are RUNNING with their owner gone: KILLED, ``failure_reason`` = reason.
    ``gone``: how an owner is judged (a ledger also knows other hosts' heartbeats)."""
    closed = []
    for run in runs:
        owner = run.data.tags.get(OWNER_TAG)
        if run.info.status != "RUNNING" or not gone(owner):
            continue
        kill_run(client, run.info.run_id, f"{reason} (its {describe_owner(owner)} is gone)", "orphaned")
        closed.append(run.info.run_id)
    if closed:
        log.warning("closed %d run%s left RUNNING by a process that is gone: %s", len(closed),
                    "s" if len(closed) > 1 else "", ", ".join(closed))
    return closed
