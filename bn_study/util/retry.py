"""Calling something that may not answer yet (a tracking server restarting, a database being created by
another process) again after a pause, for a while: the one backoff rule of the project."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

FIRST_DELAY_S = 0.5
MAX_DELAY_S = 10.0


def retry(call: Callable[[], T], *, retryable: Callable[[Exception], bool], deadline: float | None = None,
          attempts: int | None = None, on_retry: Callable[[Exception], None] | None = None) -> T:
    """``call()`` until it returns. After a retryable error, wait (0.5 s, doubling, at most 10 s, never past
    ``deadline``, a ``time.monotonic()`` value) and call again while the deadline has not passed and fewer
    than ``attempts`` calls were made; otherwise the last error is raised. Neither given: one call."""
    delay, made = FIRST_DELAY_S, 0
    while True:
        made += 1
        try:
            return call()
        except Exception as err:
            out_of_time = deadline is None or time.monotonic() >= deadline
            out_of_tries = attempts is not None and made >= attempts
            if not retryable(err) or (out_of_tries if attempts is not None else out_of_time):
                raise
            if on_retry is not None:
                on_retry(err)
            time.sleep(delay if deadline is None else min(delay, max(0.0, deadline - time.monotonic())))
            delay = min(delay * 2, MAX_DELAY_S)
