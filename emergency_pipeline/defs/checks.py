"""Asset checks: the spreadsheet's quality, rule 5 (one result per desired number), the
failure share, and a read-back of the account after apply.

The checks are partitioned like their assets: unpartitioned, they load every partition of the
asset (a dict) from a persistent IO manager, and failed as soon as a second source had run."""

import os
import warnings
from typing import Any

import pandas as pd
from dagster import (
    AssetCheckExecutionContext, AssetCheckResult, AssetCheckSeverity, AssetIn, PreviewWarning,
    asset_check,
)

from emergency_pipeline.client import TelnyxAPIError
from emergency_pipeline.defs import metadata as md
from emergency_pipeline.defs.assets import (
    desired_emergency_settings, emergency_account_snapshot, emergency_operation_outcomes,
)
from emergency_pipeline.defs.partitions import desired_state_sources
from emergency_pipeline.defs.resources import TelnyxResource
from emergency_pipeline.read_back import agrees, plan_reads, read_back, target_counts, target_of
from emergency_pipeline.run_tables import StageRef
from emergency_pipeline.run_tables import query as run_query

# Partitioned checks are a deliberate choice (see above); say so once here rather than warn
# at every load of the code location.
warnings.filterwarnings("ignore", category=PreviewWarning,
                        message="Specifying a partitions_def on an AssetCheckSpec")


def _threshold(name: str, default: float) -> float:
    return float(os.environ.get(name, default))


@asset_check(asset=desired_emergency_settings, partitions_def=desired_state_sources,
             description="Share of spreadsheet rows rejected stays under a threshold.")
def rejected_rows_share(desired_emergency_settings: StageRef) -> AssetCheckResult:
    counts = desired_emergency_settings.counts
    # The sheet's rows, duplicates too.
    rejected, total = counts["rejected_rows"], counts["input_rows"]
    share = rejected / total if total else 0.0
    limit = _threshold("EMERGENCY_PIPELINE_MAX_REJECTED_SHARE", 0.2)
    return AssetCheckResult(
        passed=share <= limit, severity=AssetCheckSeverity.WARN,
        metadata={"rejected_rows": rejected, "rows": total, "share": round(share, 4),
                  "limit": limit},
        description=None if share <= limit else
        f"{rejected} of {total} rows rejected ({share:.1%} > {limit:.0%}): see desired_rejections",
    )


@asset_check(asset=emergency_operation_outcomes, partitions_def=desired_state_sources, blocking=True,
             additional_ins={"desired": AssetIn(key=desired_emergency_settings.key)},
             description="Every desired row has exactly one result in the run (rule 5).")
def one_result_per_desired_number(emergency_operation_outcomes: StageRef,
                                  desired: StageRef) -> AssetCheckResult:
    # In SQL over the run's stage files: a million rows never become pandas frames here.
    (row,) = run_query(ONE_RESULT_SQL, o=emergency_operation_outcomes, d=desired)
    counts = dict(zip(("desired_rows", "outcome_rows", "rows_without_result",
                       "results_without_row", "rows_with_several_results",
                       "numbers_with_several_results", "results_left_empty"), row))
    passed = not any(counts[k] for k in list(counts)[2:])
    return AssetCheckResult(passed=passed, metadata=counts)


ONE_RESULT_SQL = """
WITH expected AS (
    SELECT DISTINCT source_file, source_row FROM (
        SELECT source_file, source_row FROM d.accepted
        UNION ALL SELECT source_file, source_row FROM d.rejected)),
per_row AS (SELECT source_file, source_row, count(*) AS n FROM o.outcomes GROUP BY ALL)
SELECT
    (SELECT count(*) FROM expected),
    (SELECT count(*) FROM o.outcomes),
    (SELECT count(*) FROM expected e ANTI JOIN per_row p USING (source_file, source_row)),
    (SELECT count(*) FROM per_row p ANTI JOIN expected e USING (source_file, source_row)),
    (SELECT count(*) FROM per_row WHERE n > 1),
    (SELECT count(*) FROM (
        SELECT coalesce(number_id, phone_number) AS k FROM o.outcomes
        WHERE result IS DISTINCT FROM 'rejected' AND k IS NOT NULL
        GROUP BY k HAVING count(*) > 1)),
    (SELECT count(*) FROM o.outcomes WHERE result IS NULL)
"""


@asset_check(asset=emergency_operation_outcomes, partitions_def=desired_state_sources,
             description="Share of submitted numbers that failed or expired stays low.")
def failure_share(emergency_operation_outcomes: StageRef) -> AssetCheckResult:
    ((submitted, failed),) = run_query(
        "SELECT count(*), count(*) FILTER (result IN ('failed', 'expired')) FROM o.outcomes "
        "WHERE result IN ('succeeded', 'failed', 'expired', 'pending')",
        o=emergency_operation_outcomes)
    share = failed / submitted if submitted else 0.0
    limit = _threshold("EMERGENCY_PIPELINE_MAX_FAILURE_SHARE", 0.1)
    by_error = pd.DataFrame(run_query(FAILURES_BY_ERROR_SQL, o=emergency_operation_outcomes),
                            columns=["result", "error_code", "error_title", "error_pointer",
                                     "numbers"])
    return AssetCheckResult(
        passed=bool(share <= limit), severity=AssetCheckSeverity.WARN,
        metadata={"submitted": submitted, "failed_or_expired": failed,
                  "share": round(float(share), 4), "limit": limit,
                  "failures_by_error": md.table(by_error)},
    )


FAILURES_BY_ERROR_SQL = """
SELECT result, error_code, error_title, error_pointer, count(*) AS numbers FROM o.outcomes
WHERE result IN ('failed', 'expired') GROUP BY ALL ORDER BY numbers DESC, error_code
"""


DISAGREEING_COLUMNS = ["phone_number", "number_id", "target_enabled", "target_address_id",
                       "live_enabled", "live_address_id"]


@asset_check(asset=emergency_operation_outcomes, partitions_def=desired_state_sources,
             additional_ins={"snapshot": AssetIn(key=emergency_account_snapshot.key)},
             description="After apply, the account read back agrees with the plan for every "
                         "number whose job succeeded.")
def account_agrees_after_apply(context: AssetCheckExecutionContext,
                               emergency_operation_outcomes: StageRef, snapshot: StageRef,
                               telnyx: TelnyxResource) -> AssetCheckResult:
    # Only the succeeded rows leave the stage file (a tenth of a million-row run at most).
    done = run_query("SELECT number_id, phone_number, target_enabled, target_address_id "
                     "FROM o.outcomes WHERE result = 'succeeded'", o=emergency_operation_outcomes)
    if not done:
        return AssetCheckResult(passed=True, metadata={"checked": 0},
                                description="no number succeeded in this run: nothing to read back")
    # A number without an id cannot be read back: it stays unmatched below, so it disagrees.
    targets = {str(i): target_of(bool(on), a or None)
               for i, _, on, a in done if i is not None}
    # Each target's cheaper way, known from the run's tables before any request.
    reads = plan_reads(*target_counts(snapshot.path, targets))
    try:
        with telnyx.client(context.log) as client:
            got = read_back(client, targets, reads.listed, context.log)
    except TelnyxAPIError as exc:
        # The outcomes are recorded; a read-back the API refuses now is a failed check to
        # look at, not a failed run.
        return AssetCheckResult(passed=False, severity=AssetCheckSeverity.WARN,
                                metadata={"checked": 0, "succeeded": len(done)},
                                description=f"could not read the account back: {exc}")
    wrong = _disagreeing(done, got.records)
    return AssetCheckResult(
        passed=not wrong,
        metadata={"checked": len(done), "disagreeing": len(wrong),
                  "sample": md.table(pd.DataFrame(wrong[:md.SAMPLE_ROWS],
                                                  columns=DISAGREEING_COLUMNS)),
                  "read_back_requests": got.requests, "targets_listed": got.targets_listed,
                  "read_by_id": got.by_id, "estimated_requests": reads.requests},
        description=None if not wrong else
        f"{len(wrong)} numbers whose job succeeded do not hold their target, {_named(wrong)}",
    )


def _disagreeing(done: list[tuple], records: dict[str, dict]) -> list[tuple]:
    """The rows of `done` whose number, as read back, does not hold its target."""
    wrong = []
    for i, phone, on, a, *_ in done:
        live = records.get(str(i)) if i is not None else None
        if not agrees(live, bool(on), a):
            live = live or {}
            wrong.append((phone, i, bool(on), a, live.get("emergency_enabled"),
                          live.get("emergency_address_id")))
    return wrong


def _named(wrong: list[tuple]) -> str:
    return "e.g. " + ", ".join(str(w[0]) for w in wrong[:3])


def all_checks() -> list[Any]:
    return [rejected_rows_share, one_result_per_desired_number, failure_share,
            account_agrees_after_apply]
