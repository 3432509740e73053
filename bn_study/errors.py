"""The one exception type for mistakes a user can make, and how the entry point reports them."""

from __future__ import annotations


class UserError(Exception):
    """A bad value or an unusable environment that the user can fix.

    The message is one sentence naming the bad value and what is allowed; the entry point prints it
    without a traceback and exits with code 2 before anything (an MLflow run, a file) is written.
    """

    exit_code = 2


def exit_for_user(err: Exception) -> None:
    """Print the one-sentence message and exit 2, without a traceback.

    Raised as SystemExit so it passes through Hydra's job runner, which would otherwise catch the
    error, print "Error executing job ..." and re-raise it later.
    """
    import sys

    print(f"error: {err}", file=sys.stderr)
    raise SystemExit(UserError.exit_code)
