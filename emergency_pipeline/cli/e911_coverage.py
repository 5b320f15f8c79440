"""`emergency-pipeline coverage`: the account's E911 coverage, read-only, in this process.

Runs the job e911_coverage_report (the account listed, never changed, no lease, no sheet),
prints the counts and writes the one-page HTML report and the CSV of the numbers to act on
(--out FOLDER, default <database folder>/coverage/). Resources come from the environment as
for `run`. Exit status: 0 the report was made (whatever it found), 1 error.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("coverage", help="the account's E911 coverage report (read-only)",
                              description=__doc__)
    p.add_argument("--out", metavar="FOLDER",
                   help="also copy the HTML page and the CSV here")
    p.add_argument("--quiet", action="store_true", help="no Dagster log lines")
    p.add_argument("--account", metavar="NAME", help="the account (needed only when the code "
                   "location has several)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from emergency_pipeline.one_line_errors import explain_run_failure
    from emergency_pipeline.cli.logger import cli_console
    from emergency_pipeline.cli.preflight import PreflightError, check_api_key, check_dagster_home

    try:
        check_api_key()
        home = check_dagster_home()
    except PreflightError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    from dagster import DagsterInstance

    from emergency_pipeline.definitions import defs
    from emergency_pipeline.defs.e911_coverage import COVERAGE_JOB
    from emergency_pipeline.launch import AccountNotChosen, account_job_name
    from emergency_pipeline.cli.run_report import _open_instance

    try:
        name = account_job_name(defs, args.account, COVERAGE_JOB)
    except AccountNotChosen as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    instance = _open_instance() if home else DagsterInstance.ephemeral()
    level = "CRITICAL" if args.quiet else "INFO"
    job = defs.resolve_job_def(name).with_logger_defs({"console": cli_console})
    result = job.execute_in_process(
        instance=instance, raise_on_error=False,
        run_config={"loggers": {"console": {"config": {"log_level": level}}}})
    print(f"run {result.run_id}: {'succeeded' if result.success else 'FAILED'}", flush=True)
    if not result.success:
        for line in explain_run_failure(result):
            print(f"error: {line}", file=sys.stderr)
        return 1
    (event,) = result.get_asset_materialization_events()
    meta = event.materialization.metadata
    print(f"\nE911 coverage of {meta['account'].value}:")
    for key in ("numbers", "e911_enabled", "active_without_e911", "unmanaged", "drift",
                "address_not_validated"):
        print(f"  {key:<22} {meta[key].value}")
    files = [Path(meta[k].value) for k in ("export_html", "export_csv")]
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        files = [Path(shutil.copy2(f, out / f.name)) for f in files]
    print("\nReport: " + "  ".join(str(f) for f in files))
    print("Views: coverage_active_without_e911, coverage_unmanaged, coverage_drift, "
          "coverage_address_not_validated (table e911_coverage)")
    return 0
