"""Real processes for the fault tests: ``python -m bn_study`` started from a launch dir, and a ``kill -9`` at a
chosen moment — when a line is printed, or when the tracking store first holds something."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest


def launch(cwd: Path, args: list[str]) -> subprocess.Popen:
    """``python -m bn_study ARGS`` in ``cwd``, stdout and stderr merged into one text pipe."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "bn_study", *args], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def kill_at_line(proc: subprocess.Popen, text: str) -> None:
    """SIGKILL the moment a line containing ``text`` is printed."""
    assert proc.stdout is not None
    for line in proc.stdout:
        if text in line:
            proc.send_signal(signal.SIGKILL)
            break
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL, f"the process ended before printing {text!r}"


def kill_when_store_has(proc: subprocess.Popen, db: Path, query: str, *, every: float = 0.02,
                        timeout: float = 300) -> None:
    """SIGKILL the moment ``query`` (a count) on the sqlite store, read only, is non-zero. A process that ended
    first fails the test: the fault it was meant to plant never happened, and nothing was proved."""
    deadline = time.monotonic() + timeout
    while True:
        assert time.monotonic() < deadline, f"the store never answered {query!r} within {timeout:.0f} s"
        if proc.poll() is not None:
            pytest.fail(f"the process ended (exit {proc.returncode}) before the kill could land ({query})")
        try:
            with sqlite3.connect(f"{db.as_uri()}?mode=ro", uri=True) as con:
                if con.execute(query).fetchone()[0]:
                    break
        except sqlite3.Error:  # not created yet, or locked by the writer for a moment
            pass
        time.sleep(every)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
