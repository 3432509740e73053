"""What the user sees in the terminal: one shared rich console, so log lines and progress bars draw on
the same screen without tearing, and the progress bars of a job (epochs, steps, the live loss).

Bars are off when stdout is not a terminal or when jobs run in parallel processes (bars from several
processes would overwrite each other); the per-epoch log line is written either way.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Callable
from contextlib import AbstractContextManager
from types import TracebackType

from rich.console import Console
from rich.logging import RichHandler
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

PLAIN_FORMAT = "[%(asctime)s][%(name)s][%(levelname)s] - %(message)s"


def stdout_is_terminal() -> bool:
    return sys.stdout.isatty()


# Created lazily: pytest and Hydra swap sys.stdout, and a Console binds its file when built.
_console: Console | None = None


def get_console() -> Console:
    global _console
    if _console is None or _console.file is not sys.stdout:
        _console = Console(file=sys.stdout)
    return _console


def make_console_handler() -> logging.Handler:
    """RichHandler in a terminal, a plain stream handler otherwise (logs piped to files stay greppable)."""
    if stdout_is_terminal():
        return RichHandler(console=get_console(), show_path=False, markup=False, log_time_format="[%X]")
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter(PLAIN_FORMAT))
    return handler


IN_PROCESS_LAUNCHERS = ("hydra._internal.core_plugins.basic_launcher.BasicLauncher",)


def bars_wanted(setting: object, launcher_target: str | None) -> bool:
    """``progress=auto``: bars only in a terminal and with the in-process launcher."""
    if setting is True or setting is False:
        return setting
    return stdout_is_terminal() and (launcher_target is None or launcher_target in IN_PROCESS_LAUNCHERS)


class TrainingProgress(AbstractContextManager["TrainingProgress"]):
    def __init__(self, enabled: bool, epochs: int, steps_of: Callable[[int], int], description: str) -> None:
        """``steps_of(epoch)``: the optimizer steps epoch ``epoch`` (0-based) makes, the step bar's total."""
        self.enabled = enabled
        self.steps_of = steps_of
        self._progress: Progress | None = None
        if enabled:
            self._progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[loss]}"),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                console=get_console(),
                transient=True,
            )
            self._epochs = self._progress.add_task(description, total=epochs, loss="")
            self._steps = self._progress.add_task("  steps", total=steps_of(0), loss="")

    def __enter__(self) -> TrainingProgress:
        if self._progress is not None:
            self._progress.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._progress is not None:
            self._progress.stop()

    def for_epoch(self, epoch: int) -> Callable[[int, list[float] | None], None] | None:
        """A callback for the loop's logging cadence, or None when bars are off (the loop then skips it)."""
        if self._progress is None:
            return None
        progress, steps = self._progress, self._steps
        progress.reset(steps, total=self.steps_of(epoch), loss="")

        def advance(done: int, losses: list[float] | None) -> None:
            shown = "" if not losses else "loss " + " ".join(f"{v:.4f}" for v in losses[:4])
            progress.update(steps, completed=done, loss=shown)

        return advance

    def epoch_done(self, val_acc: list[float]) -> None:
        if self._progress is not None:
            steps = self._progress.tasks[self._steps]
            self._progress.update(self._steps, completed=steps.total)  # the steps after the last logged one
            self._progress.update(self._epochs, advance=1,
                                  loss="val_acc " + " ".join(f"{v:.4f}" for v in val_acc[:4]))


def closing_line(run_ids: list[str], failures: list[str | None], last: list[dict[str, float]] | None, uri: str,
                 experiment_id: str, epochs: int) -> str:
    """The job's last line: which runs, how they ended, the final numbers, where they are, how to look."""
    ended = [("FAILED: " + f) if f else "FINISHED" for f in failures]
    runs = "run" if len(run_ids) == 1 else f"{len(run_ids)} runs"
    states = ended[0] if len(set(ended)) == 1 else ", ".join(f"{i} {e}" for i, e in zip(run_ids, ended))
    numbers = ""
    if last:
        shown = [(k, [m[k] for m in last if k in m]) for k in ("val_acc", "val_loss")]
        numbers = " · after epoch {}: ".format(epochs) + ", ".join(
            f"{k} {' '.join(f'{v:.4f}' for v in vs)}" for k, vs in shown if vs)
    # MLflow 3's UI opens in its GenAI view unless the address asks for the model-training one
    page = (f"http://127.0.0.1:5000/#/experiments/{experiment_id}/runs/{run_ids[0]}" if len(run_ids) == 1
            else f"http://127.0.0.1:5000/#/experiments/{experiment_id}/runs") + "?workflowType=machine_learning"
    return (f"{runs} {' '.join(run_ids)}: {states}{numbers} · store {uri} · to look: "
            f"mlflow ui --backend-store-uri {uri}, then {page}")


class LaunchLineFilter(logging.Filter):
    """A console filter (see conf/hydra/*_logging): Hydra's launch lines (``#3 : norm=bn1 …``) without the
    sweeper's plumbing (``++hydra.job.env_set.…``, which Hydra's own filter misses for its ``++``) and with a
    sampled number's 17 digits shown as ``≈`` 4 (the job's config and its MLflow params keep every digit)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if record.name.startswith("hydra") and _LAUNCH_LINE.match(message):
            head, _, overrides = message.partition(" : ")
            kept = [_rounded(o) for o in overrides.split(" ") if not o.lstrip("+~").startswith("hydra.")]
            record.msg, record.args = f"{head} : {' '.join(kept)}", None
        return True


_LAUNCH_LINE = re.compile(r"^\s*#\d+ : ")
_LONG_NUMBER = re.compile(r"^([^=]+)=(-?\d+\.\d{7,}(?:[eE][-+]?\d+)?|-?\d\.\d{7,}[eE][-+]?\d+)$")


def _rounded(override: str) -> str:
    found = _LONG_NUMBER.match(override)
    return f"{found.group(1)}≈{float(found.group(2)):.4g}" if found else override
