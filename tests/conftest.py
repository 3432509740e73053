"""Shared fixtures: the real MNIST (fetched once by the project's own data chain), the CLI in-process, a free
port, and the runs a launch directory's store holds."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
# Every test that trains on real MNIST reads it from here; the first test session fetches it.
os.environ.setdefault("BN_STUDY_DATA", str(REPO / "data"))
# Tests must not pick up a tracking server from the environment of whoever runs them.
os.environ.pop("MLFLOW_TRACKING_URI", None)


@dataclass
class CliResult:
    code: int
    out: str
    err: str


@pytest.fixture
def cli(tmp_path, monkeypatch, capsys):
    """Run ``python -m bn_study ARGS`` in this process, launched from ``cwd`` (default: tmp_path)."""
    from hydra.core.global_hydra import GlobalHydra

    from bn_study.__main__ import main

    def run(*args: str, cwd: Path | None = None) -> CliResult:
        monkeypatch.chdir(cwd or tmp_path)
        # main() sets it for the user's shell session; set here so the test's monkeypatch takes it back
        monkeypatch.setenv("HYDRA_FULL_ERROR", os.environ.get("HYDRA_FULL_ERROR", "1"))
        monkeypatch.setattr(sys, "argv", ["bn_study", *args])
        GlobalHydra.instance().clear()
        code = 0
        try:
            main()
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def free_port() -> Callable[[], int]:
    """A function returning a TCP port on 127.0.0.1 that nothing listens on (yet)."""
    return _free_port


def _runs_in(where: Path | str, experiment: str = "bn_study") -> tuple[Any, list[Any]]:
    from mlflow import MlflowClient

    uri = where if isinstance(where, str) and "://" in where else f"sqlite:///{Path(where) / 'mlflow.db'}"
    client = MlflowClient(uri)
    found = client.get_experiment_by_name(experiment)
    runs = [] if found is None else client.search_runs([found.experiment_id], max_results=5000,
                                                         order_by=["attributes.start_time ASC"])
    return client, runs


@pytest.fixture(scope="session")
def runs_in() -> Callable[..., tuple[Any, list[Any]]]:
    """``runs_in(launch_dir_or_uri, experiment="bn_study")`` → (client, the experiment's runs, oldest first);
    a launch directory means its ``mlflow.db``."""
    return _runs_in


def _make_read_only(path: Path) -> None:
    if os.geteuid() != 0:
        path.chmod(0o555 if path.is_dir() else 0o444)
        return
    for cmd in (["mount", "--bind", str(path), str(path)], ["mount", "-o", "remount,ro,bind", str(path)]):
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0:
            subprocess.run(["umount", str(path)], capture_output=True)
            pytest.skip(f"running as root, and a read-only bind mount is refused here: {done.stderr.strip()}")
    assert not os.access(path, os.W_OK)


def _undo_read_only(path: Path) -> None:
    if os.geteuid() != 0:
        path.chmod(0o755 if path.is_dir() else 0o644)
    elif subprocess.run(["umount", str(path)], capture_output=True).returncode != 0:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)  # still busy: detach it all the same


@pytest.fixture
def read_only():
    """``read_only(path)``: the directory or file becomes read-only for this process until the test ends — even
    as root, where file modes stop no write (a read-only bind mount of it onto itself; the test skips, saying
    why, where mounting is refused). ``read_only.undo(path)`` gives it back earlier."""
    made: list[Path] = []

    def make(path: Path) -> None:
        _make_read_only(path)
        made.append(path)

    def undo(path: Path) -> None:
        if path in made:
            made.remove(path)
            _undo_read_only(path)

    make.undo = undo  # type: ignore[attr-defined]
    yield make
    for path in reversed(made):
        _undo_read_only(path)


@pytest.fixture
def tmpfs():
    """``tmpfs(path, size)``: a fresh tmpfs of ``size`` (mount's words: ``9m``, ``64k``) mounted on the directory
    ``path`` until the test ends — a disk that really fills up (the test skips, saying why, where mounting is
    refused). ``tmpfs.resize(path, size)`` grows or shrinks it in place, its files kept."""
    mounted: list[Path] = []

    def mount(path: Path, size: str) -> Path:
        path.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                              capture_output=True, text=True)
        if done.returncode != 0:
            pytest.skip(f"cannot mount a small tmpfs to fill up here: {done.stderr.strip()}")
        mounted.append(path)
        return path

    def resize(path: Path, size: str) -> None:
        subprocess.run(["mount", "-o", f"remount,size={size}", str(path)], check=True, capture_output=True)

    mount.resize = resize  # type: ignore[attr-defined]
    yield mount
    for path in reversed(mounted):
        if subprocess.run(["umount", str(path)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(path)], capture_output=True)  # still busy: detach it all the same


def _postgres_missing() -> str | None:
    """None when PostgreSQL's server programs and psycopg2 are here (installing them if allowed), else why not."""
    def found() -> bool:
        return bool(shutil.which("initdb") or glob.glob("/usr/lib/postgresql/*/bin/initdb"))

    if not found() and os.geteuid() == 0 and shutil.which("apt-get"):
        subprocess.run(["apt-get", "install", "-y", "-q", "postgresql"], capture_output=True, timeout=900,
                       env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
    if not found():
        return "PostgreSQL's server (Debian package postgresql) is not installed and could not be installed"
    if os.geteuid() == 0 and not shutil.which("runuser"):
        return "running as root without runuser, so PostgreSQL cannot be started as the postgres user"
    try:
        import psycopg2  # noqa: F401
    except ImportError:
        return "psycopg2 is not installed (pip install -e '.[test]')"
    return None


@pytest.fixture(scope="session")
def server_dir(postgres_missing) -> Iterator[Callable[[str], Path]]:
    """A function making a directory for a PostgreSQL-backed server (skipping the test, with the reason, where
    PostgreSQL cannot run). Not under pytest's private tmp dir: the postgres user must reach the cluster."""
    made: list[Path] = []

    def make(name: str) -> Path:
        if postgres_missing:
            pytest.skip(postgres_missing)
        made.append(Path(tempfile.mkdtemp(prefix=f"bn-study-{name}-")))
        made[-1].chmod(0o755)
        return made[-1]

    yield make
    for root in made:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_missing() -> str | None:
    """Why PostgreSQL's server cannot run here (None: it can; Debian's package is installed when missing and
    the tests run as root). A test that needs it skips with this reason — the only reason it may skip."""
    return _postgres_missing()
