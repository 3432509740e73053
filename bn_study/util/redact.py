"""Passwords out of everything the project shows or keeps: messages, log lines, MLflow tags, params and
artifacts, files in the sweep dir. A URI's userinfo (``scheme://user:password@host``) keeps its user and
loses its password, wherever it stands in a text; the one implementation, used at every place that writes.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

MASK = "***"

# scheme://user:password@ — the password runs to the last "@" before the host (an unencoded "@" in a
# password must not leave its tail behind), never past whitespace, a quote or the path.
_USERINFO = re.compile(r"(?P<head>\b[A-Za-z][A-Za-z0-9+.\-]*://[^\s/?#@:'\"<>]*):(?P<password>[^\s/?#'\"<>]*)@")


def mask_userinfo(text: str) -> str:
    """``text`` with the password of every URI in it replaced by ``***`` (``http://u:***@host``)."""
    return _USERINFO.sub(lambda m: f"{m['head']}:{MASK}@", str(text))


def has_password(text: str) -> bool:
    """Whether a URI in ``text`` carries a password."""
    return _USERINFO.search(str(text)) is not None


class MaskingFilter(logging.Filter):
    """A handler filter (see conf/hydra/*_logging): every record's text, traceback included, masked before
    it reaches the console or a log file — lines by Hydra, MLflow or SQLAlchemy too, not only ours."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = mask_userinfo(message)
        if masked != message:
            record.msg, record.args = masked, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = mask_userinfo(record.exc_text)
        return True


def save_masked(config: Any, path: Path) -> None:
    """``OmegaConf.save`` with every password masked: the sweep dir's multirun.yaml, never read back."""
    from omegaconf import OmegaConf

    from bn_study.util.atomic import write_atomic

    write_atomic(path, mask_userinfo(OmegaConf.to_yaml(config)).encode())


def mask_file(path: Path) -> None:
    """Rewrite a text file that holds a password in a URI with it masked (atomically; others left alone)."""
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError):
        return
    if has_password(text):
        from bn_study.util.atomic import write_atomic

        write_atomic(path, mask_userinfo(text).encode())
