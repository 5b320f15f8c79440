"""What `emergency-pipeline run` prints after a run, and its exit status.

Exit statuses (as `terraform plan -detailed-exitcode`):
  0  the run succeeded: an apply run, or a plan-only run with nothing to change
  1  error: the run failed, or could not start (the one-line message says why and the fix)
  2  a plan-only run succeeded and changes are planned (run again with --apply)
  3  the run succeeded but rejected more of the sheet than the rejected_rows_share check
     allows: the plan covers only the accepted rows; fix the rejected rows first
"""

from __future__ import annotations

from pathlib import Path

from emergency_pipeline.planning import report as plan_report
from emergency_pipeline.analytics.store import Store

EXIT_OK, EXIT_ERROR, EXIT_CHANGES, EXIT_REJECTED = 0, 1, 2, 3
# The check whose failure gets EXIT_REJECTED (its own, so a script can tell it apart).
REJECTED_CHECK = "rejected_rows_share"


def rejected_rows(store: Store, run_id: str) -> int:
    (n,) = store.query("SELECT count(*) AS n FROM operation_outcomes WHERE run_id = ? AND "
                       "result = 'rejected'", [run_id])["n"]
    return int(n)


def print_plan(database: str, run_id: str, source: str, limit: int = 10) -> bool:
    """Print the plan of a plan-only run and where its full list is (the plan asset wrote the
    CSV); True if it changes anything. Only each group's first rows leave DuckDB; limit 0
    prints the counts only."""
    store = Store(database)
    # DuckDB's min_by takes n >= 1: one head is read and none is shown.
    heads = store.query(plan_report.group_sql("emergency_plan WHERE run_id = ?"),
                        [run_id, max(limit, 1)])
    if heads.empty:
        print(f"\nNo plan rows for run {run_id} in {database} (see: {plan_report.plan_sql(run_id)})")
        return False
    plan, totals = plan_report.heads_and_totals(heads)
    addresses = store.read("account_addresses")
    csv = plan_report.plan_csv_path(database, run_id)
    where: str | Path = csv if csv.exists() else \
        f"{Path(database).resolve()}: {plan_report.plan_sql(run_id)}"
    print("\n" + plan_report.render_plan(plan, addresses, limit=limit, full_list_at=where,
                                         totals=totals, rejected=rejected_rows(store, run_id)))
    changes = plan_report.has_changes(plan, totals)
    if changes:
        print(f"\nThis run only planned; nothing was submitted. To apply: "
              f"emergency-pipeline run {source} --apply")
    return changes


def _open_instance() -> object:
    """$DAGSTER_HOME's instance, its storages made ready under a file lock: two runs started
    together in a new home both create Dagster's SQLite tables, and one would crash on the
    other's ("table ... already exists")."""
    import fcntl
    import os

    from dagster import DagsterInstance

    lock = os.path.join(os.environ["DAGSTER_HOME"], ".emergency_pipeline-open.lock")
    with open(lock, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            instance = DagsterInstance.get()
            instance.get_runs_count()                       # run storage
            instance.get_dynamic_partitions("desired_state_sources")   # event log storage
            instance.all_instigator_state()                 # schedule storage
            return instance
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def start(args) -> object | None:
    """The Dagster instance for the run, after the checks; None (and one line on stderr)
    when the run cannot start."""
    import logging
    import os
    import sys

    from emergency_pipeline.one_line_errors import explain
    from emergency_pipeline.cli.preflight import (PreflightError, check_api_key, check_dagster_home,
                                              check_source)

    try:
        check_api_key()
        check_source(args.source, args.sheet)
        home = check_dagster_home()
    except PreflightError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return None
    if args.quiet:
        # Dagster's own python loggers (warnings of the framework) print outside the run's
        # console logger, whose level run_config sets.
        logging.getLogger("dagster").setLevel(logging.ERROR)
    from dagster import DagsterInstance

    try:
        return _open_instance() if home else DagsterInstance.ephemeral()
    except Exception as exc:  # noqa: BLE001 - e.g. a broken dagster.yaml: one line, the fix
        print(f"error: cannot open the Dagster instance in DAGSTER_HOME={os.environ.get('DAGSTER_HOME')}"
              f" ({explain(exc)}): fix its dagster.yaml or point DAGSTER_HOME elsewhere",
              file=sys.stderr)
        return None


def finish(args, result) -> int:
    """Print the run's result (the plan, the summary, or the one-line errors); the exit status."""
    import os
    import sys

    from emergency_pipeline.one_line_errors import explain_run_failure
    from emergency_pipeline.defs.resources import DEFAULT_DATABASE
    from emergency_pipeline.cli.demo import print_summary

    print(f"run {result.run_id}: {'succeeded' if result.success else 'FAILED'}", flush=True)
    if not result.success:
        for line in explain_run_failure(result):
            print(f"error: {line}", file=sys.stderr)
        if args.log_level.upper() == "DEBUG":
            for event in result.all_events:
                if event.is_step_failure and event.step_failure_data.error is not None:
                    print(event.step_failure_data.error.to_string(), file=sys.stderr)
        else:
            print("(the traceback: run again with --log-level DEBUG)", file=sys.stderr)
        return EXIT_ERROR
    database = os.environ.get("EMERGENCY_PIPELINE_DUCKDB", DEFAULT_DATABASE)
    changes = False
    try:   # the run's outcome is already decided; a report that fails must not change it
        if not args.apply:
            changes = print_plan(database, result.run_id, args.source, args.plan_limit)
        else:
            print_applied(database, result.run_id)
        print_summary(database, result.run_id)
    except Exception as exc:  # noqa: BLE001
        print(f"(no summary: {type(exc).__name__}: {exc})", file=sys.stderr)
    failed = failed_checks(result)
    for name, text in failed:
        print(f"check failed: {name}: {text}")
    if any(name == REJECTED_CHECK for name, _ in failed):
        print(f"exit status {EXIT_REJECTED}: too much of the sheet was rejected; the run only "
              "covered the accepted rows (fix the rows above, then run again)", file=sys.stderr)
        return EXIT_REJECTED
    return EXIT_CHANGES if changes else EXIT_OK


def failed_checks(result) -> list[tuple[str, str]]:
    """(check name, what it says) of every asset check of the run that did not pass."""
    out = []
    for evaluation in result.get_asset_check_evaluations():
        if evaluation.passed:
            continue
        text = evaluation.description or ", ".join(
            f"{k} {getattr(v, 'value', v)}" for k, v in list(evaluation.metadata.items())[:4])
        out.append((evaluation.check_name, " ".join(str(text).split())))
    return out


def print_applied(database: str, run_id: str) -> None:
    """What an apply run did, by action and result (the summary below gives the reasons)."""
    rows = Store(database).query(
        "SELECT action, result, count(*) AS numbers FROM operation_outcomes WHERE run_id = ? "
        "AND action IN ('enable', 'disable', 'change_address') GROUP BY ALL "
        "ORDER BY action, numbers DESC", [run_id])
    if rows.empty:
        print("\nApplied: nothing (the account already matched the accepted rows).")
        return
    parts = [f"{r.action} {r.numbers} {r.result}" for r in rows.itertuples()]
    print(f"\nApplied: {sum(rows['numbers'])} changes submitted ({', '.join(parts)}).")
