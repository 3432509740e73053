"""Shared fixtures: the real MNIST (fetched once by the project's own data chain) and the CLI in-process."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

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
