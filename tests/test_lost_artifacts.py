"""A finished run whose artifacts were deleted (``mlruns/`` removed) is still a result and is skipped on the
rerun — but said, in one warning line naming the run and the folder, not silently."""

from __future__ import annotations

import shutil
from pathlib import Path

QUICK = ("-m", "seed=0", "epochs=1", "data.limit_train=200", "probe.enabled=false", "tracking.figures=false")


def test_a_finished_run_without_its_artifacts_is_reported_on_the_rerun(cli, tmp_path: Path) -> None:
    launch = tmp_path / "launch"
    launch.mkdir()
    assert cli(*QUICK, cwd=launch).code == 0
    shutil.rmtree(launch / "mlruns")
    again = cli(*QUICK, cwd=launch)  # Hydra's job logging writes to the console
    assert again.code == 0
    lost = [ln for ln in (again.out + again.err).splitlines() if "its artifacts are gone" in ln]
    assert len(lost) == 1 and "is FINISHED" in lost[0] and str(launch / "mlruns") in lost[0]
    assert "delete the run to train it again" in lost[0]


def test_a_finished_run_with_its_artifacts_is_skipped_quietly(cli, tmp_path: Path) -> None:
    launch = tmp_path / "launch"
    launch.mkdir()
    assert cli(*QUICK, cwd=launch).code == 0
    again = cli(*QUICK, cwd=launch)
    assert again.code == 0 and "skipped: every seed of this job already has a result" in again.out + again.err
    assert "its artifacts are gone" not in again.out + again.err
