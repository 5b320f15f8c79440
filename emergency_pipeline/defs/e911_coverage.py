"""The E911 coverage report (e911_coverage/report.py): its asset, check, job and schedule.

Unpartitioned and apart from the reconcile job: it needs no sheet. It reads the account
(numbers and addresses, read-only: it never takes the account lease, never writes) into the
run's own snapshot stage, then joins it with the analytics history (the last applied target
and result of each number, which sources manage it). The latest coverage of each account is
in `e911_coverage` (one view per category), each refresh's counts in `e911_coverage_runs`,
and a one-page HTML report with a CSV of the numbers to act on in <database folder>/coverage/.
"""

from dagster import (
    AssetCheckResult, AssetCheckSeverity, AssetExecutionContext, AssetSelection,
    DefaultScheduleStatus, MetadataValue, asset, asset_check, define_asset_job, schedule,
)
from dagster_duckdb import DuckDBResource

from emergency_pipeline.defs import metadata as md
from emergency_pipeline.defs.resources import PipelineStorage, TelnyxResource
from emergency_pipeline.defs.run_scope import run_context, step_failures
from emergency_pipeline.e911_coverage.report import CATEGORIES
from emergency_pipeline.stage_files import StageRef
from emergency_pipeline.steps.e911_coverage import report_coverage

COVERAGE_GROUP = "e911_coverage"
COVERAGE_JOB = "e911_coverage_report"


@asset(group_name=COVERAGE_GROUP,
       **md.asset_args("e911_coverage", {"telnyx", "duckdb"}, telnyx="read"))
def emergency_e911_coverage(context: AssetExecutionContext, telnyx: TelnyxResource,
                            duckdb: DuckDBResource, storage: PipelineStorage) -> StageRef:
    """Every number of the account: E911 state and address, the source that manages it, its
    last applied target and result; counts of the numbers to act on (e911_coverage/)."""
    run = run_context(context, telnyx, duckdb, storage)
    with step_failures(run):
        done = report_coverage(run)
    account = run.account_label
    context.add_output_metadata({
        "account": account, **done.counts,
        **{f"export_{p.suffix[1:]}": MetadataValue.path(str(p)) for p in done.exported},
        **md.stage(context, duckdb.database, done.ref, done.counts["numbers"]),
        **{f"sql_{c}": MetadataValue.text(f"SELECT * FROM coverage_{c} WHERE account = "
                                          f"'{account}'") for c in CATEGORIES},
        **{f"sample_{c}": md.table(frame) for c, frame in done.samples.items()},
    })
    return done.ref


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
