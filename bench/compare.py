"""Whole-process wall time of one run of the Keras batch-norm article's condition, bn_study vs peers.

Each command is a fresh ``sys.executable`` process started in a fresh temporary directory (so every
bn_study run gets a new mlflow.db, and Lightning a new lightning_logs/), timed from spawn to exit:
imports, data loading, 10 epochs with validation on the test set after each, tracking, teardown.
Runs are interleaved round-robin (bn_study, tutorial, lightning, keras, bn_study, ...) so a noisy
neighbour hits every entry alike instead of one whole row; each row is the median of ``--repeats``.

- ``bn_study``:  ``python -m bn_study norm=bn1 tracking.uri=sqlite:///<tmp>/mlflow.db``
- ``tutorial``:  ``bench/peers/tutorial_loop.py`` (DataLoader + textbook loop; the ratios' baseline)
- ``lightning``: ``bench/peers/lightning_fit.py`` (``Trainer.fit`` with its defaults; needs lightning)
- ``keras``:     ``bench/peers/keras_article.py`` (the article's code, KERAS_BACKEND=torch; needs keras)
- ``--startup`` adds ``cfg_job`` (``python -m bn_study --cfg job``: imports + Hydra composition only) and
  ``one_epoch`` (``python -m bn_study epochs=1 data.limit_train=1000``: the fixed cost of a real job).

Every process finds MNIST through ``$BN_STUDY_DATA`` / ``--data-root`` (nothing is downloaded) and
uses its own default thread count unless ``--threads`` sets OMP_NUM_THREADS for all of them. On a
shared 2-core machine two PyTorch threads stall at every op whenever a neighbour is busy (an epoch of
1.3 s has taken 50-100 s), so each run first waits, up to ``--max-wait`` s, until the CPUs are quiet.

    python bench/compare.py                      # the four entries, 3 interleaved rounds
    python bench/compare.py --startup -n 5
    python bench/compare.py --only tutorial keras --threads 1
"""

from __future__ import annotations

import argparse
import datetime
import importlib.metadata
import importlib.util
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PEERS = REPO / "bench" / "peers"
PY = sys.executable
# The last validation accuracy a process printed: bn_study's epoch line and the peers' own lines.
VAL_ACC = re.compile(r"\bval_acc[ =:]+(\d\.\d+)")


@dataclass
class Entry:
    name: str
    argv: list[str]  # "{tmp}" is replaced by the run's temporary directory
    needs: str | None = None  # an optional package; missing -> the entry is skipped
    startup: bool = False  # not a full run: no ratios
    seconds: list[float] = field(default_factory=list)
    accs: list[float] = field(default_factory=list)
    busy: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)


def entries(data_root: str) -> list[Entry]:
    peer = ["--data-root", data_root]
    return [
        Entry("bn_study", [PY, "-m", "bn_study", "norm=bn1", "tracking.uri=sqlite:///{tmp}/mlflow.db"]),
        Entry("tutorial", [PY, str(PEERS / "tutorial_loop.py"), *peer]),
        Entry("lightning", [PY, str(PEERS / "lightning_fit.py"), *peer], needs="lightning"),
        Entry("keras", [PY, str(PEERS / "keras_article.py"), *peer], needs="keras"),
        Entry("cfg_job", [PY, "-m", "bn_study", "--cfg", "job"], startup=True),
        Entry("one_epoch", [PY, "-m", "bn_study", "epochs=1", "data.limit_train=1000"], startup=True),
    ]


def busy_cores(seconds: float = 1.0) -> float:
    """CPUs busy over the next ``seconds`` (from /proc/stat): the load average lags by a minute."""
    def sample() -> tuple[int, int]:
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        return sum(fields), fields[3] + fields[4]  # total, idle + iowait
    total0, idle0 = sample()
    time.sleep(seconds)
    total1, idle1 = sample()
    ncpu = os.cpu_count() or 1
    return ncpu * (1 - (idle1 - idle0) / max(total1 - total0, 1))


def wait_quiet(max_busy: float, max_wait: float) -> float:
    """Block until fewer than ``max_busy`` CPUs are busy or ``max_wait`` s passed; the last reading."""
    deadline = time.monotonic() + max_wait
    while (busy := busy_cores()) >= max_busy and time.monotonic() < deadline:
        time.sleep(2)
    return busy


def run_once(entry: Entry, env: dict[str, str]) -> None:
    tmp = Path(tempfile.mkdtemp(prefix=f"compare-{entry.name}-"))
    log = tmp / "output.log"
    argv = [a.replace("{tmp}", str(tmp)) for a in entry.argv]
    with open(log, "w") as out:
        tic = time.perf_counter()
        code = subprocess.call(argv, cwd=tmp, env=env, stdout=out, stderr=subprocess.STDOUT)
        seconds = time.perf_counter() - tic
    text = log.read_text(errors="replace")
    if code != 0:  # kept for reading; a failure must not stop the other entries' rounds
        entry.failures.append(f"exit {code}, see {log}")
        print(f"  {entry.name}: FAILED (exit {code}), output kept in {log}", flush=True)
        return
    entry.seconds.append(seconds)
    if accs := VAL_ACC.findall(text):
        entry.accs.append(float(accs[-1]))
    shutil.rmtree(tmp, ignore_errors=True)
    acc = f", val_acc {entry.accs[-1]:.4f}" if accs else ""
    print(f"  {entry.name}: {seconds:.1f} s{acc} (busy CPUs before: {entry.busy[-1]:.2f})", flush=True)


def machine() -> str:
    cpuinfo = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    model = next((ln.split(":", 1)[1].strip() for ln in cpuinfo.splitlines()
                  if ln.startswith("model name")), platform.processor() or "unknown CPU")

    def version(pkg: str) -> str:
        try:
            return importlib.metadata.version(pkg)
        except importlib.metadata.PackageNotFoundError:
            return "not installed"

    # Versions from the metadata, not by importing: this process stays light, the measured ones don't.
    return (f"{model}, {os.cpu_count()} cores; Python {platform.python_version()}, torch {version('torch')}, "
            f"lightning {version('lightning')}, keras {version('keras')}; {datetime.date.today()}")


def ratio(value: float, base: Entry | None) -> str:
    return f"{value / statistics.median(base.seconds):.2f}×" if base and base.seconds else "—"


def table(selected: list[Entry]) -> str:
    by_name = {e.name: e for e in selected}
    tutorial, lightning = by_name.get("tutorial"), by_name.get("lightning")
    rows = ["| entry | median s | min–max s | vs tutorial | vs Lightning | val acc | busy CPUs before |",
            "|---|---|---|---|---|---|---|"]
    for e in selected:
        if not e.seconds:
            rows.append(f"| {e.name} | failed: {'; '.join(e.failures)} | | | | | |")
            continue
        med = statistics.median(e.seconds)
        acc = (f"{min(e.accs):.4f}" if min(e.accs) == max(e.accs) else
               f"{min(e.accs):.4f}–{max(e.accs):.4f}") if e.accs else "—"
        ratios = ("—", "—") if e.startup else (ratio(med, tutorial), ratio(med, lightning))
        note = f" ({len(e.failures)} failed)" if e.failures else ""
        rows.append(f"| {e.name}{note} | {med:.1f} | {min(e.seconds):.1f}–{max(e.seconds):.1f} | "
                    f"{ratios[0]} | {ratios[1]} | {acc} | {min(e.busy):.2f}–{max(e.busy):.2f} |")
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", "--repeats", type=int, default=3, help="interleaved rounds (default 3)")
    parser.add_argument("--only", nargs="+", metavar="NAME",
                        choices=["bn_study", "tutorial", "lightning", "keras", "cfg_job", "one_epoch"],
                        help="run just these entries")
    parser.add_argument("--startup", action="store_true", help="add the cfg_job and one_epoch entries")
    parser.add_argument("--data-root", default=os.environ.get("BN_STUDY_DATA", "data"))
    parser.add_argument("--threads", type=int, help="OMP_NUM_THREADS for every process (default: unset)")
    parser.add_argument("--max-busy", type=float, default=0.5,
                        help="start a run only when fewer CPUs than this are busy (default 0.5)")
    parser.add_argument("--max-wait", type=float, default=300,
                        help="seconds to wait for that before running anyway (default 300; 0: never wait)")
    args = parser.parse_args()

    data_root = str(Path(args.data_root).resolve())  # the runs start in other directories
    if not (Path(data_root) / "MNIST" / "raw" / "train-images-idx3-ubyte").exists():
        raise SystemExit(f"no MNIST IDX files under {data_root}/MNIST/raw (see --data-root)")
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}  # fresh db per run
    env.update(BN_STUDY_DATA=data_root, KERAS_BACKEND="torch")
    if args.threads:
        env["OMP_NUM_THREADS"] = str(args.threads)

    selected = []
    for e in entries(data_root):
        if args.only and e.name not in args.only and not (e.startup and args.startup):
            continue
        if not args.only and e.startup and not args.startup:
            continue
        if e.needs and importlib.util.find_spec(e.needs) is None:
            print(f"skipped {e.name}: `{e.needs}` is not installed (pip install {e.needs})")
            continue
        selected.append(e)

    print(f"machine: {machine()}")
    print(f"threads: {args.threads or 'each process its default'}; data: {data_root}")
    for e in selected:
        print(f"  {e.name}: {' '.join(a.replace(PY, 'python').replace(str(REPO) + '/', '').replace('{tmp}', '<tmp>') for a in e.argv)}")
    for r in range(1, args.repeats + 1):
        print(f"round {r}/{args.repeats}", flush=True)
        for e in selected:
            e.busy.append(wait_quiet(args.max_busy, args.max_wait))
            run_once(e, env)
    print()
    print(table(selected))


if __name__ == "__main__":
    main()
