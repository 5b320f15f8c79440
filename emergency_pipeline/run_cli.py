"""`emergency-pipeline run SOURCE`: run the reconcile job once, in this process.

Resources come from the environment, as in the code location: TELNYX_API_KEY,
TELNYX_BASE_URL, EMERGENCY_PIPELINE_DUCKDB; the run is stored in $DAGSTER_HOME (an
ephemeral instance when it is unset). Plans only unless --apply. Exit status 0 when the
run succeeded, 1 when it failed (e.g. the safety guard refused it).
"""

from __future__ import annotations

import argparse
import os
import sys


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("run", help="run the reconcile job once for a desired-state source",
                              description=__doc__)
    p.add_argument("source", help="CSV / XLSX / folder / .duckdb file (the partition key)")
    p.add_argument("--apply", action="store_true", help="submit the jobs (default: plan only)")
    p.add_argument("--follow-timeout", type=float, default=None, metavar="S",
                   help="seconds to follow submitted jobs (default 900)")
    p.add_argument("--max-disable-count", type=int, default=None)
    p.add_argument("--max-disable-share", type=float, default=None)
    p.add_argument("--allow-mass-disable", action="store_true")
    p.add_argument("--max-batch-size", type=int, default=None)
    p.add_argument("--sheet", help="XLSX sheet name")
    p.add_argument("--table", help="table, when SOURCE is a DuckDB file")
    p.add_argument("--query", help="query, when SOURCE is a DuckDB file")
    p.add_argument("--log-level", default="INFO", help="Dagster console log level")
    p.add_argument("--quiet", action="store_true", help="print only the run's result line")
    p.set_defaults(func=run)


def run_config(args: argparse.Namespace) -> dict:
    from emergency_pipeline.defs.jobs import apply_run_config

    config = apply_run_config(args.apply)
    jobs = config["ops"]["emergency_update_jobs"]["config"]
    for name, value in (("follow_timeout_seconds", args.follow_timeout),
                        ("max_disable_count", args.max_disable_count),
                        ("max_disable_share", args.max_disable_share),
                        ("max_batch_size", args.max_batch_size)):
        if value is not None:
            jobs[name] = value
    if args.allow_mass_disable:
        jobs["allow_mass_disable"] = True
    desired = {k: v for k, v in (("sheet", args.sheet), ("table", args.table),
                                 ("query", args.query)) if v}
    if desired:
        config["ops"]["desired_emergency_settings"] = {"config": desired}
    config["loggers"] = {"console": {"config": {"log_level": args.log_level.upper()}}}
    return config


def run(args: argparse.Namespace) -> int:
    from dagster import DagsterInstance

    from emergency_pipeline.defs.jobs import JOB_NAME, run_job

    if not os.environ.get("TELNYX_API_KEY"):
        print("TELNYX_API_KEY is not set", file=sys.stderr)
        return 2
    instance = DagsterInstance.get() if os.environ.get("DAGSTER_HOME") else \
        DagsterInstance.ephemeral()
    from emergency_pipeline.dead_runs import fail_dead_runs, process_tags

    fail_dead_runs(instance, JOB_NAME)   # runs left STARTED by a killed `run` (issue 14)
    result = run_job(args.source, args.apply, run_config(args), instance=instance,
                     tags=process_tags())
    print(f"run {result.run_id}: {'succeeded' if result.success else 'FAILED'}", flush=True)
    if not result.success:
        for event in result.all_events:
            if event.is_step_failure:
                err = event.step_failure_data.error
                print(f"  {event.step_key}: {err.message.strip() if err else 'failed'}",
                      file=sys.stderr)
    elif not args.quiet:
        from emergency_pipeline.defs.resources import DEFAULT_DATABASE
        from emergency_pipeline.demo import print_summary

        try:   # the run's outcome is already decided; a summary that fails must not change it
            print_summary(os.environ.get("EMERGENCY_PIPELINE_DUCKDB", DEFAULT_DATABASE),
                          result.run_id)
        except Exception as exc:  # noqa: BLE001
            print(f"(no summary: {type(exc).__name__}: {exc})", file=sys.stderr)
    return 0 if result.success else 1
