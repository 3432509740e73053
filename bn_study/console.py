"""One shared rich console, so log lines and progress bars draw on the same screen without tearing."""

from __future__ import annotations

import logging
import sys

from rich.console import Console
from rich.logging import RichHandler

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
