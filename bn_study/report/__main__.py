"""``python -m bn_study.report EXPERIMENT [EXPERIMENT ...]``: write ``reports/<experiment>/`` from MLflow.

Reads the runs from the tracking store only (``--tracking-uri``, else ``$MLFLOW_TRACKING_URI``, else
``sqlite:///<cwd>/mlflow.db`` — the same resolution as the training app), the claims from
``conf/experiment/<experiment>.yaml``; writes README.md and PNG figures into ``--out``/<experiment>/,
logs them as artifacts of the sweep's parent run under ``report/``, and rewrites ``--out``/README.md
to link every report that exists there. A user mistake (unknown experiment, no runs, bad ``--parent``)
is one sentence on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bn_study.report",
        description="Write a study's report (figures, final-metric table, claim verdicts) from its MLflow runs.")
    parser.add_argument("experiments", nargs="+", metavar="EXPERIMENT",
                        help="MLflow experiment name(s), e.g. bn_vs_none book_ch3 (claims: conf/experiment/<name>.yaml)")
    parser.add_argument("--parent", metavar="RUN_ID",
                        help="the sweep's parent run to report (default: the experiment's latest finished sweep)")
    parser.add_argument("--tracking-uri", metavar="URI",
                        help="MLflow store (default: $MLFLOW_TRACKING_URI, else sqlite:///<cwd>/mlflow.db)")
    parser.add_argument("--out", default="reports", type=Path, help="output root (default: reports)")
    parser.add_argument("--no-artifacts", action="store_true",
                        help="do not log the report as artifacts of the parent run")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    # imported after argument parsing so --help stays instant
    from bn_study.errors import UserError
    from bn_study.report.build import report_experiment, write_index
    from bn_study.report.collect import open_store
    from bn_study.tracking.store import resolve_tracking_uri

    failed, written = False, 0
    try:
        if args.parent and len(args.experiments) > 1:
            raise UserError("--parent names one sweep, so give exactly one experiment with it.")
        uri = resolve_tracking_uri(args.tracking_uri, Path.cwd())
        client = open_store(uri)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return UserError.exit_code
    for name in dict.fromkeys(args.experiments):
        try:
            readme = report_experiment(client, name, args.out, parent_id=args.parent, artifacts=not args.no_artifacts)
        except UserError as err:
            print(f"error: {err}", file=sys.stderr)
            failed = True
            continue
        print(f"{name}: {readme}")
        written += 1
    if written:  # the index lists what exists under --out; nothing new, nothing to rewrite
        print(f"index: {write_index(args.out)}")
    return UserError.exit_code if failed else 0


if __name__ == "__main__":
    sys.exit(main())
