"""``python -m bn_study`` / ``bn-study``: the Hydra app, with user errors turned into exit code 2."""

from __future__ import annotations

import os
import sys


def main() -> None:
    # Hydra would print its own errors and exit 1; with full errors on, they reach this function,
    # which reports a user's mistake in one line and exits 2. Crashes keep their traceback (exit 1).
    os.environ.setdefault("HYDRA_FULL_ERROR", "1")
    from hydra.errors import CompactHydraException, InstantiationException, OverrideParseException

    from bn_study.app import main as hydra_main
    from bn_study.errors import (StoreError, SweepFailed, UserError, describe_config_error, exit_for_user,
                                 interrupted_line)
    from bn_study.util.disk import as_store_error, disk_problem
    from bn_study.util.redact import mask_userinfo

    try:
        hydra_main()
    except KeyboardInterrupt as err:  # the runs are closed as KILLED already; a traceback would say nothing more
        print(mask_userinfo(interrupted_line(err)), file=sys.stderr)
        sys.exit(130)
    except UserError as err:  # raised by a sweeper before any job starts
        exit_for_user(err)
    except (StoreError, SweepFailed) as err:  # a full disk, a server that stayed down, no trial completed
        print(f"error: {mask_userinfo(str(err))}", file=sys.stderr)
        sys.exit(1)
    except OverrideParseException as err:
        exit_for_user(Exception(f"cannot parse the override {err.override!r}: {_parse_reason(err.message)}"))
    except InstantiationException as err:  # a sweeper, sampler, pruner or launcher refusing its settings
        exit_for_user(_instantiation_error(err, UserError))
    except CompactHydraException as err:  # a wrong type, an unknown choice or key, refused while composing
        exit_for_user(Exception(describe_config_error(err)))
    except ValueError as err:  # Hydra's own command-line check: --cfg with -m, say
        if not str(err).startswith("Only one of --run, --multirun"):
            raise
        exit_for_user(Exception(f"{err} (to see a job's config, drop -m: python -m bn_study OVERRIDES --cfg job)"))
    except Exception as err:  # a full or read-only disk under the sweep dir or the store: said plainly too
        if disk_problem(err) is None:
            raise
        print(f"error: {as_store_error(err, 'mlflow.db')}", file=sys.stderr)
        sys.exit(1)


def _parse_reason(message: str) -> str:
    """Hydra's parse error without its first line (which repeats the override) and its link to the docs."""
    lines = [line.strip() for line in str(message).splitlines() if line.strip()]
    lines = [line for line in lines if not line.startswith("See https://") and not line.startswith("Error parsing override")]
    return " ".join(lines) or str(message).strip()


def _instantiation_error(err: Exception, user_error: type) -> Exception:
    """One sentence for a constructor Hydra called with the user's settings (a sweeper, pruner, sampler)."""
    import re

    seen: BaseException | None = err
    while seen is not None:  # the project's own check, raised inside the constructor Hydra called
        if isinstance(seen, user_error):
            return seen
        seen = seen.__cause__ or seen.__context__
    text = str(err)
    key = re.search(r"full_key: (\S+)", text)
    target = re.search(r"target '([^']+)'", text)
    cause = err.__cause__
    reason = str(cause) if cause is not None else (text.splitlines()[1:2] or [text])[0]
    where = key.group(1) if key else "a Hydra plugin's settings"
    what = target.group(1) if target else "it"
    return Exception(f"{where}: {what} refuses these settings ({reason.strip().rstrip('.')}).")


if __name__ == "__main__":
    main()
