"""``python -m bn_study`` / ``bn-study``: the Hydra app, with user errors turned into exit code 2."""

from __future__ import annotations

import os
import sys


def main() -> None:
    # Hydra would print its own errors and exit 1; with full errors on, they reach this function,
    # which reports a user's mistake in one line and exits 2. Crashes keep their traceback (exit 1).
    os.environ.setdefault("HYDRA_FULL_ERROR", "1")
    from hydra.errors import CompactHydraException, OverrideParseException

    from bn_study.app import main as hydra_main
    from bn_study.errors import UserError, exit_for_user
    from bn_study.tracking.runs import StoreError

    try:
        hydra_main()
    except UserError as err:  # raised by a sweeper before any job starts
        exit_for_user(err)
    except StoreError as err:  # a full artifact disk, a tracking server that stayed down: said plainly
        print(f"error: {err}", file=sys.stderr)
        sys.exit(1)
    except OverrideParseException as err:
        exit_for_user(Exception(f"cannot parse the override {err.override!r}: {err.message}"))
    except CompactHydraException as err:  # unknown config choice, missing key
        cause = err.__cause__
        detail = f"\n{cause}" if cause is not None and str(cause) not in str(err) else ""
        exit_for_user(Exception(f"{err}{detail}"))


if __name__ == "__main__":
    main()
