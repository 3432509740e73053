"""A sweep dir of its own for each search, even when several start in the same second.

Hydra names the sweep dir after the launch time, so searches started together (several processes
sharing one Optuna storage) would share it — and with it their job dirs and the MLflow parent file the
jobs read. The first search claims the dir; another one that finds it held by a live search moves to
``<dir>_1`` (``_2``, …) and hands that to its jobs as ``hydra.sweep.dir``.
"""

import os
import socket
from pathlib import Path


CLAIM_FILE = ".optuna_sweeper"


def claim_sweep_dir(base: Path) -> Path:
    """``base``, unless a live search on this machine (or one on another host) holds it: then ``base_1``, ….

    The claim is a file made with O_EXCL holding host and pid; a dead process's claim is taken over, so
    re-running into an explicit ``hydra.sweep.dir`` keeps using it."""
    me = f"{socket.gethostname()} {os.getpid()}"
    for n in range(1000):
        candidate = base if n == 0 else base.with_name(f"{base.name}_{n}")
        candidate.mkdir(parents=True, exist_ok=True)
        claim = candidate / CLAIM_FILE
        try:
            fd = os.open(claim, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            if _claim_is_live(claim, me):
                continue
            claim.write_text(me)  # a finished search's dir: take it over
            return candidate
        with os.fdopen(fd, "w") as f:
            f.write(me)
        return candidate
    raise RuntimeError(f"no free sweep dir next to {base}")


def _claim_is_live(claim: Path, me: str) -> bool:
    try:
        host, pid = claim.read_text().split()
    except (OSError, ValueError):
        return False  # half-written or unreadable: a crashed search's
    if f"{host} {pid}" == me:
        return False
    if host != socket.gethostname():
        return True  # cannot tell whether a process on another host is alive: leave its dir alone
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def quoted_override_value(text: str) -> str:
    """A value for Hydra's override grammar, whatever characters a path holds."""
    # Hydra unescapes only quotes and the backslashes right before them
    text = text.replace("'", "\\'")
    return "'" + (text + "\\" if text.endswith("\\") else text) + "'"
