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
1.3 s has taken 50-100 s), so each run first waits, up to ``--max-wait`` s, until the CPUs are quiet,
and the table's last column says how many cores other processes used while it ran (from /proc/stat
minus the run's own rusage). A run during which they used more than ``--max-others`` cores is thrown
away and run again, up to ``--retries`` times; the last try is kept whatever happened ("n rerun" in the
table), so a range that still shows more than a few tenths there was measured under contention.

    python bench/compare.py                      # the four entries, 3 interleaved rounds
    python bench/compare.py --startup -n 5
    python bench/compare.py --only tutorial keras --threads 1 --logs /tmp/compare-logs
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
    seconds: list[float] = field(default_factory=list)  # wall time of each kept run
    accs: list[float] = field(default_factory=list)  # its last validation accuracy
    others: list[float] = field(default_factory=list)  # cores other processes used during it
    failures: list[str] = field(default_factory=list)
    attempts: int = 0
    discarded: int = 0  # runs thrown away because other processes shared the CPUs


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


def cpu_seconds() -> tuple[float, float]:
    """(busy, total) CPU-seconds of the whole machine so far, from /proc/stat."""
    # user nice system idle iowait irq softirq steal (guest time is already counted in user).
    ticks = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    hz = os.sysconf("SC_CLK_TCK")
    return (sum(ticks) - ticks[3] - ticks[4]) / hz, sum(ticks) / hz  # idle and iowait are not busy


def busy_cores(seconds: float = 1.0) -> float:
    """CPUs busy over the next ``seconds``: the load average lags by a minute."""
    busy0, total0 = cpu_seconds()
    time.sleep(seconds)
    busy1, total1 = cpu_seconds()
    return (os.cpu_count() or 1) * (busy1 - busy0) / max(total1 - total0, 1e-9)


def wait_quiet(max_busy: float, max_wait: float) -> float:
    """Block until fewer than ``max_busy`` CPUs are busy or ``max_wait`` s passed; the last reading."""
    deadline = time.monotonic() + max_wait
    while (busy := busy_cores()) >= max_busy and time.monotonic() < deadline:
        time.sleep(2)
    return busy


def run_once(entry: Entry, env: dict[str, str], args: argparse.Namespace, keep_anyway: bool) -> bool:
    """One timed run, recorded in ``entry``; False when it shared the CPUs with more than
    ``args.max_others`` cores of other processes and was discarded (unless ``keep_anyway``)."""
    busy = wait_quiet(args.max_busy, args.max_wait)
    tmp = Path(tempfile.mkdtemp(prefix=f"compare-{entry.name}-"))
    log = tmp / "output.log"
    argv = [a.replace("{tmp}", str(tmp)) for a in entry.argv]
    with open(log, "w") as out:
        busy0, _ = cpu_seconds()
        tic = time.perf_counter()
        proc = subprocess.Popen(argv, cwd=tmp, env=env, stdout=out, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)  # its rusage: the CPU time the run itself used
        seconds = time.perf_counter() - tic
        busy1, _ = cpu_seconds()
    code = os.waitstatus_to_exitcode(status)
    cpu = usage.ru_utime + usage.ru_stime
    # What the rest of the machine burnt meanwhile, in cores: a neighbour that started mid-run shows here.
    others = max(0.0, (busy1 - busy0 - cpu) / seconds)
    entry.attempts += 1
    if args.logs:
        shutil.copy(log, args.logs / f"{entry.name}-{entry.attempts}.log")
    if code != 0:  # kept for reading; a failure must not stop the other entries' rounds
        entry.failures.append(f"exit {code}, see {log}")
        print(f"  {entry.name}: FAILED (exit {code}), output kept in {log}", flush=True)
        return True
    accs = VAL_ACC.findall(log.read_text(errors="replace"))
    shutil.rmtree(tmp, ignore_errors=True)
    acc = f", val_acc {float(accs[-1]):.4f}" if accs else ""
    line = (f"  {entry.name}: {seconds:.1f} s{acc} (CPU {cpu:.0f} s; busy CPUs before {busy:.2f}, "
            f"others during {others:.2f})")
    if others > args.max_others and not keep_anyway:
        entry.discarded += 1
        print(f"{line} -- discarded: shared the CPUs, runs again", flush=True)
        return False
    entry.seconds.append(seconds)
    entry.others.append(others)
    entry.accs.extend([float(accs[-1])] if accs else [])
    print(line, flush=True)
    return True


def machine() -> str:
    cpuinfo = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    # Every core lists the same fields; which one's values end up in the dict does not matter.
    info = {k.strip(): v.strip() for k, v in (ln.split(":", 1) for ln in cpuinfo.splitlines() if ":" in ln)}
    model = info.get("model name", platform.processor() or "unknown CPU")
    if "cpu family" in info:  # "AMD EPYC" alone does not say which generation
        model += f" (family {info['cpu family']} model {info.get('model', '?')})"

    def version(pkg: str) -> str:
        try:
            return importlib.metadata.version(pkg)
        except importlib.metadata.PackageNotFoundError:
            return "not installed"

    # Versions from the metadata, not by importing: this process stays light, the measured ones don't.
    return (f"{model}, {os.cpu_count()} cores; Python {platform.python_version()}, torch {version('torch')}, "
            f"lightning {version('lightning')}, keras {version('keras')}; {datetime.date.today()}")


def revision(tree: Path) -> str:
    """The git commit of a checkout, marked when it has uncommitted changes; or 'not a git checkout'."""
    def git(*cmd: str) -> str:
        return subprocess.run(["git", "-C", str(tree), *cmd], capture_output=True, text=True).stdout.strip()
    if not (tree / ".git").exists() or not (rev := git("rev-parse", "--short", "HEAD")):
        return "not a git checkout"
    return rev + (" + uncommitted changes" if git("status", "--porcelain", "--untracked-files=no") else "")


def shown(argv: list[str]) -> str:
    """A command as a reader would type it from the repository root."""
    return " ".join(a.replace(PY, "python").replace(f"{REPO}/", "").replace("{tmp}", "<tmp>") for a in argv)


def ratio(value: float, base: Entry | None) -> str:
    return f"{value / statistics.median(base.seconds):.2f}×" if base and base.seconds else "—"


def sec(seconds: float) -> str:
    return f"{seconds:.1f}" if seconds >= 10 else f"{seconds:.2f}"  # start-up rows are sub-second


def table(selected: list[Entry]) -> str:
    by_name = {e.name: e for e in selected}
    tutorial, lightning = by_name.get("tutorial"), by_name.get("lightning")
    rows = ["| entry | median s | min–max s | vs tutorial | vs Lightning | val acc | others' cores |",
            "|---|---|---|---|---|---|---|"]
    for e in selected:
        if not e.seconds:
            why = "failed: " + "; ".join(e.failures) if e.failures else "not run"
            rows.append(f"| {e.name} | {why} | | | | | |")
            continue
        med = statistics.median(e.seconds)
        acc = (f"{min(e.accs):.4f}" if min(e.accs) == max(e.accs) else
               f"{min(e.accs):.4f}–{max(e.accs):.4f}") if e.accs else "—"
        ratios = ("—", "—") if e.startup else (ratio(med, tutorial), ratio(med, lightning))
        note = "".join([f" ({len(e.failures)} failed)" if e.failures else "",
                        f" ({e.discarded} rerun)" if e.discarded else ""])
        rows.append(f"| {e.name}{note} | {sec(med)} | {sec(min(e.seconds))}–{sec(max(e.seconds))} | "
                    f"{ratios[0]} | {ratios[1]} | {acc} | {min(e.others):.2f}–{max(e.others):.2f} |")
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
    parser.add_argument("--max-others", type=float, default=0.3,
                        help="discard and rerun a run during which other processes used more cores than "
                             "this (default 0.3)")
    parser.add_argument("--retries", type=int, default=2, help="reruns allowed per run (default 2)")
    parser.add_argument("--bn-study-src", type=Path, metavar="DIR",
                        help="run bn_study from this source tree (put first on PYTHONPATH), e.g. an older "
                             "commit unpacked with `git archive REV | tar -x -C DIR`; default: as installed")
    parser.add_argument("--logs", type=Path, help="keep every run's output here (<entry>-<round>.log)")
    args = parser.parse_args()

    data_root = str(Path(args.data_root).resolve())  # the runs start in other directories
    if not (Path(data_root) / "MNIST" / "raw" / "train-images-idx3-ubyte").exists():
        raise SystemExit(f"no MNIST IDX files under {data_root}/MNIST/raw (see --data-root)")
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}  # fresh db per run
    env.update(BN_STUDY_DATA=data_root, KERAS_BACKEND="torch")
    if args.threads:
        env["OMP_NUM_THREADS"] = str(args.threads)
    if args.logs:
        args.logs.mkdir(parents=True, exist_ok=True)
    # The tree under test changes while others work in it: say which code each bn_study row measured.
    src = args.bn_study_src.resolve() if args.bn_study_src else REPO
    if args.bn_study_src:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(src), env.get("PYTHONPATH")]))

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
    print(f"bn_study: {src} ({revision(src)})")
    for e in selected:
        print(f"  {e.name}: {shown(e.argv)}")
    for r in range(1, args.repeats + 1):
        print(f"round {r}/{args.repeats}", flush=True)
        for e in selected:
            for retry in range(args.retries + 1):
                # The last try is kept whatever the neighbours did: the table says so.
                if run_once(e, env, args, keep_anyway=retry == args.retries):
                    break
    print()
    print(table(selected))


if __name__ == "__main__":
    main()
