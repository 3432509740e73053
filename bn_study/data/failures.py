"""The signal one acquisition source gives when it cannot deliver, so the chain can try the next one."""

from __future__ import annotations


class SourceFailed(Exception):
    """One source could not deliver the files; the message is a short reason for the final UserError."""
