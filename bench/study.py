"""Wall time of the seed studies end to end, through the real entry point with MLflow on, and the
fixed cost every job pays besides training.

Each study is ``python -m bn_study -m +experiment=<name>`` run as a subprocess from ``--launch-dir``
(where mlflow.db, mlruns/ and multirun/ go; default: a fresh temporary directory), exactly as a user
runs it. The data come from the local cache (``$BN_STUDY_DATA``, default the repository's data/).

Per-job overhead, measured separately (``--overhead-repeats`` times, medians):
- ``import``: a fresh interpreter importing the entry point (torch, hydra, mlflow …);
- ``data``: ``load_splits`` of MNIST from the cache, in this process;
- ``single job``: ``python -m bn_study data.limit_train=128 epochs=1 batch_size=128`` end to end
  (one optimizer step), next to the training time its own log reports: the difference is overhead —
  process, imports, Hydra, data, MLflow, probe, figures;
- ``multirun job``: the marginal cost of one more such job inside a multirun (``-m seed=0,…,N-1``),
  where the process and imports are paid once: (wall(N jobs) − wall(1 job)) / (N − 1).

    python bench/study.py --quick                        # smoke run: 2 000 images, 1 epoch per job
    python bench/study.py                                # the full studies (about an hour on 2 CPU cores)
    python bench/study.py --experiments book_ch3 --launch-dir /tmp/studies
    python bench/study.py --jobs 2                       # joblib launcher, 2 jobs at once (1 thread each)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
EXPERIMENTS = ("bn_vs_none", "bn_layers", "adam_vs_bn", "batch_size", "book_ch3")
QUICK = ("data.limit_train=2000", "epochs=1")
ONE_STEP = ("data.limit_train=128", "epochs=1", "batch_size=128")
EPOCH_SECONDS = re.compile(r"epoch \d+/\d+ .*\((\d+\.\d+) s\)")  # trainer.epoch_line


def load() -> float:
    return os.getloadavg()[0]


def run(cmd: list[str], cwd: Path, env: dict[str, str], log: Path | None = None) -> tuple[float, float]:
    """Wall seconds and peak resident memory (MB, the largest process of the tree) of one command; its
    output goes to ``log`` (or is discarded); a failure stops the benchmark."""
    tic = time.perf_counter()
    with open(log, "w") if log else open(os.devnull, "w") as out:
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - tic
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        where = f"; its output is in {log}" if log else ""
        raise SystemExit(f"command failed with exit code {code}: {' '.join(cmd)}{where}")
    return seconds, usage.ru_maxrss / 1024


def study_command(name: str, args: argparse.Namespace) -> list[str]:
    cmd = [sys.executable, "-m", "bn_study", "-m", f"+experiment={name}"]
    if args.quick:
        cmd += QUICK
    if args.jobs > 1:
        cmd += ["hydra/launcher=joblib", f"hydra.launcher.n_jobs={args.jobs}"]
    return cmd + list(args.override)


def overhead(args: argparse.Namespace, launch: Path, env: dict[str, str]) -> dict[str, float]:
    sys.path.insert(0, str(REPO))
    from bn_study.data import load_splits

    repeats = args.overhead_repeats
    root = env["BN_STUDY_DATA"]
    imports = [run([sys.executable, "-c", "import bn_study.app"], launch, env)[0] for _ in range(repeats)]
    data = []
    for _ in range(repeats):
        tic = time.perf_counter()
        load_splits("mnist", root)
        data.append(time.perf_counter() - tic)
    single_runs, training = [], []
    for i in range(repeats):
        log = launch / f"one_step_{i}.log"
        single_runs.append(run([sys.executable, "-m", "bn_study", *ONE_STEP, *args.override], launch, env, log))
        training.append(sum(float(m) for m in EPOCH_SECONDS.findall(log.read_text())))
    single = [seconds for seconds, _ in single_runs]
    n = args.multirun_jobs
    seeds = ",".join(str(s) for s in range(n))
    multi = [run([sys.executable, "-m", "bn_study", "-m", f"seed={seeds}", *ONE_STEP, *args.override], launch,
                 env)[0] for _ in range(max(1, repeats // 2))]
    multi_one = [run([sys.executable, "-m", "bn_study", "-m", "seed=0", *ONE_STEP, *args.override], launch, env)[0]
                 for _ in range(max(1, repeats // 2))]
    return {
        "import_s": statistics.median(imports),
        "data_from_cache_s": statistics.median(data),
        "single_job_s": statistics.median(single),
        "single_job_training_s": statistics.median(training),
        "single_job_peak_rss_mb": max(rss for _, rss in single_runs),
        "multirun_job_s": (statistics.median(multi) - statistics.median(multi_one)) / max(1, n - 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--launch-dir", type=Path, default=None,
                        help="where mlflow.db, mlruns/ and multirun/ go (default: a fresh temporary directory)")
    parser.add_argument("--experiments", nargs="+", choices=EXPERIMENTS, default=list(EXPERIMENTS))
    parser.add_argument("--quick", action="store_true", help=f"smoke run: {' '.join(QUICK)}")
    parser.add_argument("--jobs", type=int, default=1, help="jobs at once (joblib launcher) when > 1")
    parser.add_argument("--override", nargs="*", default=[], help="extra Hydra overrides for every job")
    parser.add_argument("--overhead-repeats", type=int, default=5)
    parser.add_argument("--multirun-jobs", type=int, default=5)
    parser.add_argument("--no-overhead", action="store_true", help="skip the per-job overhead measurement")
    parser.add_argument("--no-studies", action="store_true", help="only measure the per-job overhead")
    parser.add_argument("--keep", action="store_true", help="keep a temporary launch dir after the run")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args(argv)

    temporary = args.launch_dir is None
    launch = Path(tempfile.mkdtemp(prefix="bn_study_bench_")) if temporary else args.launch_dir.resolve()
    launch.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env.setdefault("BN_STUDY_DATA", str(REPO / "data"))
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
    env.pop("MLFLOW_TRACKING_URI", None)  # the launch dir's own mlflow.db
    env["COLUMNS"] = "400"  # log lines unwrapped, so the epoch times can be read back
    print(f"launch dir {launch}; data {env['BN_STUDY_DATA']}; {platform.node()} {os.cpu_count()} cores; "
          f"python {platform.python_version()}")
    results: dict[str, object] = {"launch_dir": str(launch), "quick": args.quick, "jobs": args.jobs}
    try:
        if not args.no_studies:
            walls: dict[str, float] = {}
            peaks: dict[str, float] = {}
            for name in args.experiments:
                cmd = study_command(name, args)
                before = load()
                seconds, rss = run(cmd, launch, env, log=launch / f"{name}.log")
                walls[name], peaks[name] = seconds, rss
                print(f"  {name:12s} {seconds:8.1f} s   peak RSS {rss:6.0f} MB   load {before:.2f}->{load():.2f}   "
                      f"{' '.join(cmd[2:])}", flush=True)
            total = sum(walls.values())
            print(f"  {'total':12s} {total:8.1f} s   ({total / 60:.1f} min)")
            results["studies_s"] = walls
            results["peak_rss_mb"] = peaks
            results["total_s"] = total
        if not args.no_overhead:
            before = load()
            over = overhead(args, launch, env)
            print(f"per-job overhead (medians of {args.overhead_repeats}; load {before:.2f}->{load():.2f}):")
            for key, value in over.items():
                print(f"  {key:22s} {value:8.2f} {'MB' if key.endswith('_mb') else 's'}")
            results["overhead"] = over
    finally:
        if args.json:
            args.json.write_text(json.dumps(results, indent=1))
        if temporary and not args.keep:
            shutil.rmtree(launch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
