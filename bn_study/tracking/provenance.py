"""Where a run came from: the code's git commit, the machine, the user."""

from __future__ import annotations

import functools
import getpass
import platform
import subprocess
from pathlib import Path

import torch

NOT_GIT = "not a git checkout"


@functools.lru_cache(maxsize=8)
def git_state(directory: Path) -> tuple[str, bool]:
    """(commit, dirty) of the git checkout the user launched in — where their configs and code live, which
    for an installed package is not where bn_study's own files are; (NOT_GIT, False) outside one."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=directory, capture_output=True,
                                text=True, timeout=10, check=True).stdout.strip()
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=directory,
                                capture_output=True, text=True, timeout=10, check=True).stdout
        return commit, bool(status.strip())
    except (OSError, subprocess.SubprocessError):
        return NOT_GIT, False


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"cpu: {cpu} ({torch.get_num_threads()} threads)"



def user_name() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


