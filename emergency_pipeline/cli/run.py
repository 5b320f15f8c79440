"""`emergency-pipeline run SOURCE`: run the reconcile job once, in this process.

Resources come from the environment, as in the code location: TELNYX_API_KEY,
TELNYX_BASE_URL, EMERGENCY_PIPELINE_DUCKDB; the run is stored in $DAGSTER_HOME (an
ephemeral instance when it is unset; created when it does not exist). Plans only unless
--apply; a plan-only run prints the plan like `terraform plan`. Exit status: 0 succeeded
(nothing to change, or applied), 1 error (one line says why and the fix; the traceback only
with --log-level DEBUG), 2 a plan-only run with changes planned, 3 more of the sheet
rejected than the rejected_rows_share check allows (cli/run_report.py).
"""

from __future__ import annotations

import argparse
import gc
import sys


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("run", help="run the reconcile job once for a desired-state source",
                              description=__doc__)
    p.add_argument("source", help="CSV / XLSX / folder / .duckdb file (the partition key)")
    p.add_argument("--apply", action="store_true", help="submit the jobs (default: plan only)")
    p.add_argument("--account", metavar="NAME",
                   help="the account (a component under emergency_pipeline/location/accounts/"
                        "); needed only when the code location has several")
    p.add_argument("--follow-timeout", type=float, default=None, metavar="S",
                   help="seconds to follow submitted jobs (default 900)")
    p.add_argument("--max-disable-count", type=int, default=None)
    p.add_argument("--max-disable-share", type=float, default=None)
    p.add_argument("--allow-mass-disable", action="store_true")
    p.add_argument("--max-batch-size", type=int, default=None)
    p.add_argument("--sheet", help="XLSX sheet name")
    p.add_argument("--table", help="table, when SOURCE is a DuckDB file")
    p.add_argument("--query", help="query, when SOURCE is a DuckDB file")
    p.add_argument("--log-level", default="INFO",
                   help="Dagster console log level; DEBUG also prints tracebacks")
    p.add_argument("--quiet", action="store_true",
                   help="no Dagster log lines: only the result, the plan and the summary")
    p.add_argument("--plan-limit", type=int, default=10, metavar="N",
                   help="numbers listed per group of the plan before 'and N more' "
                        "(0: the counts only)")
    p.set_defaults(func=run)


def run_config(args: argparse.Namespace) -> dict:
    # Whether it applies is the run's tag (run_job sets it from --apply), not config.
    jobs: dict = {}
    config: dict = {"ops": {}}
    for name, value in (("follow_timeout_seconds", args.follow_timeout),
                        ("max_disable_count", args.max_disable_count),
                        ("max_disable_share", args.max_disable_share),
                        ("max_batch_size", args.max_batch_size)):
        if value is not None:
            jobs[name] = value
    if args.allow_mass_disable:
        jobs["allow_mass_disable"] = True
    if jobs:
        config["ops"]["emergency_update_jobs"] = {"config": jobs}
    desired = {k: v for k, v in (("sheet", args.sheet), ("table", args.table),
                                 ("query", args.query)) if v}
    if desired:
        config["ops"]["desired_emergency_settings"] = {"config": desired}
    level = "CRITICAL" if args.quiet else args.log_level.upper()
    config["loggers"] = {"console": {"config": {"log_level": level}}}
    return config


def run(args: argparse.Namespace) -> int:
    # Importing Dagster, pandas and DuckDB makes a million long-lived objects and no garbage:
    # full collections over them cost 0.4 s a run. The collector is off while they are
    # imported, then they are frozen: later collections no longer walk them.
    gc.disable()
    try:
        from emergency_pipeline.cli.run_report import EXIT_ERROR, finish, start

        instance = start(args)
        if instance is None:
            return EXIT_ERROR
        from emergency_pipeline.cli.logger import cli_console
        from emergency_pipeline.defs.dead_runs import fail_dead_runs, process_tags
        from emergency_pipeline.defs.reconcile_job import APPLY_JOB_NAME, JOB_NAME
        from emergency_pipeline.launch import AccountNotChosen, account_job_name, run_job
        from emergency_pipeline.definitions import defs

        gc.freeze()
    finally:
        gc.enable()
    try:
        jobs = [account_job_name(defs, args.account, name) for name in (JOB_NAME, APPLY_JOB_NAME)]
    except AccountNotChosen as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    # Runs left STARTED by a killed `run` (issue 14); JOB_NAME: those of before components.
    for job in dict.fromkeys([*jobs, JOB_NAME]):
        fail_dead_runs(instance, job)
    result = run_job(args.source, args.apply, run_config(args), defs=defs, instance=instance,
                     loggers={"console": cli_console}, tags=process_tags(),
                     account=args.account)
    return finish(args, result)
