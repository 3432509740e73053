"""``python -m bn_study.report EXPERIMENT [EXPERIMENT ...]``: write ``reports/<experiment>/`` from MLflow.

Reads the runs from the tracking store only (``--tracking-uri``, else ``$MLFLOW_TRACKING_URI``, else
``sqlite:///<cwd>/mlflow.db`` — the same resolution as the training app), the claims from
``<config dir>/experiment/<experiment>.yaml``: each ``--config-dir DIR`` first (in the order given; what
Hydra's ``--config-dir`` means to ``python -m bn_study``), then the shipped configs (``conf_dir()``, from any
directory and any install). Writes README.md and PNG figures into ``--out``/<experiment>/, logs them as
artifacts of the sweep's parent run under ``report/``, and rewrites ``--out``/README.md to link every
report that exists there. ``--list`` prints the experiments it knows and where each file is. A user
mistake (unknown experiment, no runs, bad ``--parent``, a missing ``--config-dir``) is one sentence on
stderr and exit code 2.
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
    parser.add_argument("experiments", nargs="*", metavar="EXPERIMENT",
                        help="MLflow experiment name(s), e.g. bn_vs_none book_ch3 (claims: <config dir>/experiment/<name>.yaml)")
    parser.add_argument("--config-dir", action="append", default=[], type=Path, metavar="DIR", dest="config_dirs",
                        help="a config directory of your own, as Hydra's --config-dir: DIR/experiment/<name>.yaml; "
                             "searched before the shipped experiments (repeatable, first one first)")
    parser.add_argument("--list", action="store_true",
                        help="list the known experiments (yours from --config-dir, then the shipped ones) and exit")
    parser.add_argument("--parent", metavar="RUN_ID",
                        help="the sweep's parent run to report (default: the experiment's latest finished sweep)")
    parser.add_argument("--tracking-uri", metavar="URI",
                        help="MLflow store (default: $MLFLOW_TRACKING_URI, else sqlite:///<cwd>/mlflow.db)")
    parser.add_argument("--out", default="reports", type=Path, help="output root (default: reports)")
    parser.add_argument("--no-artifacts", action="store_true",
                        help="do not log the report as artifacts of the parent run")
    args = parser.parse_args(argv)
    if args.list and args.experiments:
        parser.error("--list takes no EXPERIMENT names")
    if not args.experiments and not args.list:
        parser.error("name at least one EXPERIMENT (or --list to see them)")
    return args


def list_experiments(dirs: Sequence[Path]) -> int:
    """One line per experiment: its name and the file it is read from (a --config-dir one shadows a shipped one)."""
    from bn_study.report.load import catalogue

    found = catalogue(dirs)
    width = max((len(n) for n in found), default=0)
    for name, path in found.items():
        print(f"{name:<{width}}  {path}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    # imported after argument parsing so --help stays instant
    from bn_study.errors import UserError
    from bn_study.report.load import experiment_dirs

    missing = [d for d in args.config_dirs if not d.is_dir()]
    if missing:  # as Hydra refuses a missing --config-dir
        print(f"error: config directory '{missing[0].resolve()}' (--config-dir) not found.", file=sys.stderr)
        return UserError.exit_code
    dirs = experiment_dirs(args.config_dirs)
    if args.list:
        return list_experiments(dirs)

    from bn_study.report.build import report_experiment, write_index
    from bn_study.report.collect import open_store
    from bn_study.tracking.store import resolve_tracking_uri
    from bn_study.util.redact import mask_userinfo

    failed, written = False, 0
    try:
        if args.parent and len(args.experiments) > 1:
            raise UserError("--parent names one sweep, so give exactly one experiment with it.")
        uri = resolve_tracking_uri(args.tracking_uri, Path.cwd())
        client = open_store(uri)
    except UserError as err:
        print(f"error: {mask_userinfo(str(err))}", file=sys.stderr)
        return UserError.exit_code
    for name in dict.fromkeys(args.experiments):
        try:
            readme = report_experiment(client, name, args.out, parent_id=args.parent, artifacts=not args.no_artifacts,
                                       experiment_dir=dirs)
        except UserError as err:
            print(f"error: {mask_userinfo(str(err))}", file=sys.stderr)
            failed = True
            continue
        print(f"{name}: {readme}")
        written += 1
    if written:  # the index lists what exists under --out; nothing new, nothing to rewrite
        print(f"index: {write_index(args.out)}")
    return UserError.exit_code if failed else 0


if __name__ == "__main__":
    sys.exit(main())
