"""A fault campaign: a 4-job grid killed (``kill -9``) at chosen moments, then the same command once more, and
what the records say afterwards — runs per condition, metric steps logged twice, runs left RUNNING, files
left behind, artifacts missing. Each moment starts from an empty launch dir.

Moments are read off the sqlite store (read only) or the launch dir while the grid runs: the parent exists,
the first member run exists (before any checkpoint), the first epoch is logged, the first checkpoint is
written, the last epoch of job 1 is logged, its test metrics are logged, its figures are written, job 3
trains, every member finished but the parent did not; plus a kill of one of two identical launches started
together, and a second kill during the rerun.

    python bench/kill_campaign.py                       # every moment, results as a table (and --json)
    python bench/kill_campaign.py --only first_epoch double_launch
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

GRID = ["-m", "norm=none,bn1", "act=sigmoid,relu", "epochs=3", "data.limit_train=3000", "probe.samples=200",
        "progress=false"]
CHILD = "(SELECT run_uuid FROM tags WHERE key = 'mlflow.parentRunId')"


def _count(db: Path, query: str) -> int:
    try:
        with sqlite3.connect(f"{db.as_uri()}?mode=ro", uri=True, timeout=1) as con:
            return int(con.execute(query).fetchone()[0] or 0)
    except sqlite3.Error:
        return 0


def store_has(query: str) -> Callable[[Path], bool]:
    return lambda d: _count(d / "mlflow.db", query) > 0


def file_there(pattern: str) -> Callable[[Path], bool]:
    return lambda d: any(d.glob(pattern))


MOMENTS: dict[str, Callable[[Path], bool]] = {
    "parent_created": store_has("SELECT count(*) FROM tags WHERE key = 'role' AND value = 'multirun parent'"),
    "member_created": store_has(f"SELECT count(*) FROM runs WHERE run_uuid IN {CHILD}"),
    "first_epoch": store_has("SELECT count(*) FROM metrics WHERE key = 'val_acc'"),
    "first_checkpoint": file_there("checkpoints/*.pt"),
    "last_epoch_of_job_1": store_has("SELECT count(*) FROM metrics WHERE key = 'val_acc' AND step = 3"),
    "test_metrics_of_job_1": store_has("SELECT count(*) FROM metrics WHERE key = 'test_acc'"),
    "figures_of_job_1": file_there("mlruns/**/curves.png"),
    "job_3_trains": store_has(f"SELECT count(*) >= 3 FROM runs WHERE run_uuid IN {CHILD}"),
    "all_members_done_parent_not": store_has(
        f"SELECT count(*) = 4 FROM runs WHERE status = 'FINISHED' AND run_uuid IN {CHILD}"),
}


def launch(cwd: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "bn_study", *GRID], cwd=cwd, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


def kill_when(proc: subprocess.Popen, cwd: Path, moment: Callable[[Path], bool], timeout: float = 600) -> bool:
    """SIGKILL at the moment; False when the process ended first (the moment was never met)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        if moment(cwd):
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            return True
        time.sleep(0.02)
    proc.kill()
    return False


def inspect(cwd: Path) -> dict[str, object]:
    """What the records say: per condition, FINISHED member runs; duplicate (run, key, step); RUNNING runs;
    temp/unsent/checkpoint files; finished members lacking an artifact."""
    db = sqlite3.connect(f"{(cwd / 'mlflow.db').as_uri()}?mode=ro", uri=True)
    members = db.execute(f"SELECT r.run_uuid, r.status, r.artifact_uri, t.value FROM runs r JOIN tags t ON "
                         f"t.run_uuid = r.run_uuid AND t.key = 'config_hash' WHERE r.run_uuid IN {CHILD}").fetchall()
    finished: dict[str, int] = {}
    missing = 0
    for run_id, status, artifact_uri, digest in members:
        finished.setdefault(digest, 0)
        if status == "FINISHED":
            finished[digest] += 1
            folder = Path(artifact_uri.removeprefix("file://"))
            names = {p.name for p in folder.rglob("*")} if folder.is_dir() else set()
            missing += len({"config.yaml", "curves.png", "activations.png"} - names)
    duplicates = db.execute("SELECT count(*) FROM (SELECT run_uuid, key, step FROM metrics GROUP BY run_uuid, key, "
                            "step HAVING count(*) > 1)").fetchone()[0]
    running = db.execute("SELECT count(*) FROM runs WHERE status = 'RUNNING'").fetchone()[0]
    statuses = dict(db.execute("SELECT status, count(*) FROM runs GROUP BY status").fetchall())
    db.close()
    left = [str(p.relative_to(cwd)) for p in cwd.rglob("*")
            if p.is_file() and (p.name.endswith(".tmp") or p.name.startswith("unsent_metrics")
                                or (p.suffix == ".pt" and "checkpoints" in p.parts))]
    return {"conditions": len(finished), "finished_per_condition": sorted(finished.values()),
            "duplicate_steps": duplicates, "running": running, "files_left": left, "artifacts_missing": missing,
            "statuses": statuses}


def scenario(name: str, root: Path) -> dict[str, object]:
    cwd = root / name
    cwd.mkdir()
    kills = 0
    if name == "double_launch":  # two at once, one of them killed once it trains, then the same command again
        first, second = launch(cwd), launch(cwd)
        kills += kill_when(first, cwd, MOMENTS["first_epoch"])
        second.wait()
    elif name == "killed_twice":  # killed in job 1, and the rerun killed again in job 3
        kills += kill_when(launch(cwd), cwd, MOMENTS["first_epoch"])
        kills += kill_when(launch(cwd), cwd, MOMENTS["job_3_trains"])
    else:
        kills += kill_when(launch(cwd), cwd, MOMENTS[name])
    rc = launch(cwd).wait()
    return {"moment": name, "kills": kills, "rerun_exit": rc, **inspect(cwd)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="*", help="moments to try (default: all)")
    parser.add_argument("--json", type=Path, help="write the results here too")
    args = parser.parse_args()
    names = args.only or [*MOMENTS, "double_launch", "killed_twice"]
    results = []
    with tempfile.TemporaryDirectory(prefix="kill-campaign-") as tmp:
        for name in names:
            started = time.monotonic()
            results.append({**scenario(name, Path(tmp)), "seconds": round(time.monotonic() - started)})
            r = results[-1]
            print(f"{name:30s} kills={r['kills']} rerun_exit={r['rerun_exit']} conditions={r['conditions']} "
                  f"finished/condition={r['finished_per_condition']} duplicate_steps={r['duplicate_steps']} "
                  f"running={r['running']} files_left={len(r['files_left'])} artifacts_missing="
                  f"{r['artifacts_missing']} statuses={r['statuses']} ({r['seconds']} s)", flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
