"""The E911 coverage report (e911_coverage/report.py): its asset, check, job and schedule.

Unpartitioned and apart from the reconcile job: it needs no sheet. It reads the account
(numbers and addresses, read-only: it never takes the account lease, never writes) into the
run's own snapshot stage, then joins it with the analytics history (the last applied target
and result of each number, which sources manage it). The latest coverage of each account is
in `e911_coverage` (one view per category), each refresh's counts in `e911_coverage_runs`,
and a one-page HTML report with a CSV of the numbers to act on in <database folder>/coverage/.
"""

from datetime import datetime, timezone
from pathlib import Path

import duckdb as duckdb_lib
import pandas as pd
from dagster import (
    AssetCheckResult, AssetCheckSeverity, AssetExecutionContext, AssetSelection,
    DefaultScheduleStatus, MetadataValue, asset, asset_check, define_asset_job, schedule,
)
from dagster_duckdb import DuckDBResource

from emergency_pipeline.e911_coverage import report as cov
from emergency_pipeline.one_line_errors import failures_explained
from emergency_pipeline.e911_coverage.export import write_export
from emergency_pipeline.defs import metadata as md
from emergency_pipeline.defs.resources import PipelineStorage, TelnyxResource, store_for
from emergency_pipeline.stage_files import StageRef, attach, prune
from emergency_pipeline.account_snapshot import list_numbers_into

COVERAGE_GROUP = "e911_coverage"
COVERAGE_JOB = "e911_coverage_report"


def _read_account(context: AssetExecutionContext, telnyx: TelnyxResource,
                  storage: PipelineStorage) -> StageRef:
    """Numbers and addresses into the run's snapshot stage (no jobs: nothing is planned)."""
    stage = storage.tables(context.run.run_id)
    with failures_explained(telnyx.base_url), telnyx.client(context.log) as client, \
            stage.building("snapshot") as con:
        taken = datetime.now(timezone.utc)
        listed = list_numbers_into(client, con, "numbers")
        addresses = pd.DataFrame(client.list_addresses())
        if addresses.empty:
            addresses = pd.DataFrame(columns=["id"])
        con.register("frame", addresses.astype(str).where(addresses.notna(), None))
        con.execute("CREATE TABLE addresses AS SELECT * FROM frame")
        con.unregister("frame")
    return stage.ref("snapshot", {"numbers": listed["numbers"], "addresses": len(addresses)},
                     info={"taken_at": taken.isoformat()})


def _attach_history(con: duckdb_lib.DuckDBPyConnection, database: str, log) -> bool:
    """The analytics file attached read-only as `h`; False when it is missing or held by a
    writer (the report then has no history: every number reads unmanaged, none drifts)."""
    if not Path(database).exists():
        return False
    try:
        attach(con, h=database)
        return True
    except duckdb_lib.IOException as exc:
        log.warning(f"{database} could not be read ({exc}): coverage without the history")
        return False


@asset(group_name=COVERAGE_GROUP,
       **md.asset_args("e911_coverage", {"telnyx", "duckdb"}, telnyx="read"))
def emergency_e911_coverage(context: AssetExecutionContext, telnyx: TelnyxResource,
                            duckdb: DuckDBResource, storage: PipelineStorage) -> StageRef:
    """Every number of the account: E911 state and address, the source that manages it, its
    last applied target and result; counts of the numbers to act on (e911_coverage/report.py)."""
    snapshot = _read_account(context, telnyx, storage)
    account, run_id = telnyx.account_label(), context.run.run_id
    stage = storage.tables(run_id)
    with stage.building("coverage", rows=snapshot.rows) as con:
        attach(con, n=snapshot)
        history = _attach_history(con, str(duckdb.database), context.log)
        cov.coverage_views(con, account=account, run_id=run_id,
                           taken_at=snapshot.info["taken_at"], history=history)
        con.execute(f"CREATE TABLE coverage AS {cov.COVERAGE_SQL}")
        counts = cov.counts(con)
        samples = {c: con.execute(
            "SELECT phone_number, status, emergency_enabled, address, managed_by, "
            f"last_applied_enabled, last_result FROM coverage WHERE {c} "
            f"ORDER BY phone_number LIMIT {md.SAMPLE_ROWS}").df() for c in cov.CATEGORIES}
        exported = write_export(con, Path(str(duckdb.database)).resolve().parent / "coverage",
                                account, snapshot.info["taken_at"], counts)
        for alias in ("n", *(["h"] if history else [])):
            con.execute(f"DETACH {alias}")
    ref = stage.ref("coverage", counts, info={"taken_at": snapshot.info["taken_at"],
                                              "account": account,
                                              "export": [str(p) for p in exported]})
    store = store_for(duckdb)
    # The latest coverage of each account replaces the last; the counts are kept per refresh.
    store.copy_from("e911_coverage", ref.path, "SELECT * FROM src.coverage",
                    replace_on=("account",), rows=counts["numbers"])
    store.write("e911_coverage_runs", pd.DataFrame([{
        "account": account, "run_id": run_id,
        "taken_at": pd.Timestamp(snapshot.info["taken_at"]), **counts}]))
    prune(storage.directory, storage.keep_run_tables_days * 86400, keep={run_id})
    context.log.info("coverage: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    context.add_output_metadata({
        "account": account, **counts,
        **{f"export_{p.suffix[1:]}": MetadataValue.path(str(p)) for p in exported},
        **md.stage(context, duckdb.database, ref, counts["numbers"]),
        **{f"sql_{c}": MetadataValue.text(f"SELECT * FROM coverage_{c} WHERE account = "
                                          f"'{account}'") for c in cov.CATEGORIES},
        **{f"sample_{c}": md.table(frame) for c, frame in samples.items()},
    })
    return ref


@asset_check(asset=emergency_e911_coverage,
             description="Warns on drift (a number's E911 changed outside the pipeline) and "
                         "on active numbers without E911.")
def coverage_gaps(emergency_e911_coverage: StageRef) -> AssetCheckResult:
    counts = emergency_e911_coverage.counts
    drift, off = counts["drift"], counts["active_without_e911"]
    return AssetCheckResult(
        passed=drift == 0 and off == 0, severity=AssetCheckSeverity.WARN,
        metadata={"drift": drift, "active_without_e911": off},
        description=None if drift == 0 and off == 0 else
        f"{off} active numbers without E911, {drift} drifted from their last applied target: "
        "see coverage_active_without_e911 and coverage_drift")


e911_coverage_report = define_asset_job(
    COVERAGE_JOB, selection=AssetSelection.assets(emergency_e911_coverage),
    description="Read the account (read-only, no lease, no sheet) and refresh the E911 "
                "coverage report.")


@schedule(job=e911_coverage_report, cron_schedule="0 7 * * *", execution_timezone="UTC",
          default_status=DefaultScheduleStatus.STOPPED,
          description="Daily at 07:00 UTC (after the daily reconcile): refresh the E911 "
                      "coverage report, read-only.")
def daily_e911_coverage(_context):
    return {}
