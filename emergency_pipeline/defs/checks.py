"""Asset checks: the spreadsheet's quality, rule 5 (one result per desired number), the
failure share, a read-back of the account after apply, and at the next snapshot the
read-backs an earlier run left to it.

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

from emergency_pipeline.client.account_identity import AccountUnknown
from emergency_pipeline.defs import metadata as md
from emergency_pipeline.defs.assets import (
    desired_emergency_settings, emergency_account_snapshot, emergency_operation_outcomes,
)
from emergency_pipeline.defs.partitions import desired_state_sources
from emergency_pipeline.defs.resources import PipelineStorage, TelnyxResource
from emergency_pipeline.defs.run_scope import applies
from emergency_pipeline.stage_files import StageRef
from emergency_pipeline.stage_files import query as run_query
from emergency_pipeline.steps.verification import (
    CheckOutcome, verify_after_apply, verify_earlier_successes,
)

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


# Every desired row and every outcome counted under its (source_file, source_row) in one
# grouping: a million rows cost one hash table, not one per comparison.
ONE_RESULT_SQL = """
WITH per_row AS (
    SELECT bool_or(desired) AS expected, count(*) FILTER (NOT desired) AS n FROM (
        SELECT source_file, source_row, true AS desired FROM d.accepted
        UNION ALL SELECT source_file, source_row, true FROM d.rejected
        UNION ALL SELECT source_file, source_row, false FROM o.outcomes)
    GROUP BY source_file, source_row),
numbers AS (
    SELECT coalesce(number_id, phone_number) AS k FROM o.outcomes
    WHERE result IS DISTINCT FROM 'rejected' AND k IS NOT NULL
    GROUP BY k HAVING count(*) > 1)
SELECT
    count(*) FILTER (expected),
    (SELECT count(*) FROM o.outcomes),
    count(*) FILTER (expected AND n = 0),
    count(*) FILTER (NOT expected),
    count(*) FILTER (n > 1),
    (SELECT count(*) FROM numbers),
    (SELECT count(*) FROM o.outcomes WHERE result IS NULL)
FROM per_row
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
                            columns=["result", "error_code", "error_title", "numbers"])
    return AssetCheckResult(
        passed=bool(share <= limit), severity=AssetCheckSeverity.WARN,
        metadata={"submitted": submitted, "failed_or_expired": failed,
                  "share": round(float(share), 4), "limit": limit,
                  "failures_by_error": md.table(by_error)},
    )


# By error, as the analysts' view failures_by_error_code: not by error_pointer, which names
# a number's place in its job (/phone_numbers/7), so that grouping by it gave a row a number
# or so, and the table's first 20 rows did not hold every failure.
FAILURES_BY_ERROR_SQL = """
SELECT result, error_code, error_title, count(*) AS numbers FROM o.outcomes
WHERE result IN ('failed', 'expired') GROUP BY ALL ORDER BY numbers DESC, error_code
"""


# A share of the snapshot's requests: a read-back costlier than that now is left to the next
# snapshot (see applying/read_back.py). "inf" reads back every time, 0 never.
READ_BACK_SHARE = ("EMERGENCY_PIPELINE_READ_BACK_MAX_SHARE", 0.05)


def _result(outcome: CheckOutcome) -> AssetCheckResult:
    metadata = dict(outcome.metadata)
    if outcome.sample is not None:
        metadata["sample"] = md.table(outcome.sample.head(md.SAMPLE_ROWS))
    return AssetCheckResult(
        passed=bool(outcome.passed), metadata=metadata, description=outcome.description,
        severity=AssetCheckSeverity.WARN if outcome.warn_only else AssetCheckSeverity.ERROR)


@asset_check(asset=emergency_operation_outcomes, partitions_def=desired_state_sources,
             additional_ins={"snapshot": AssetIn(key=emergency_account_snapshot.key)},
             description="After apply, the account holds the target of every number whose job "
                         "succeeded: read back now when that costs at most "
                         "EMERGENCY_PIPELINE_READ_BACK_MAX_SHARE of the snapshot's requests "
                         "(0.05), else left to the next snapshot (earlier_successes_hold).")
def account_agrees_after_apply(context: AssetCheckExecutionContext,
                               emergency_operation_outcomes: StageRef, snapshot: StageRef,
                               telnyx: TelnyxResource,
                               storage: PipelineStorage) -> AssetCheckResult:
    return _result(verify_after_apply(
        emergency_operation_outcomes, snapshot, open_client=lambda: telnyx.client(context.log),
        ledger=storage.ledger, account=lambda: telnyx.account(storage.safety_store().names),
        max_share=_threshold(*READ_BACK_SHARE), log=context.log))


@asset_check(asset=emergency_account_snapshot, partitions_def=desired_state_sources,
             description="Numbers whose job succeeded in an earlier run that left them to the "
                         "next snapshot (account_agrees_after_apply over its budget) hold "
                         "their target in this snapshot. No request: the snapshot has them.")
def earlier_successes_hold(context: AssetCheckExecutionContext,
                           emergency_account_snapshot: StageRef, telnyx: TelnyxResource,
                           storage: PipelineStorage) -> AssetCheckResult:
    try:
        account = telnyx.account(storage.safety_store().names)
    except AccountUnknown as exc:
        # A plan-only run with a key refused the users list and no TELNYX_ACCOUNT: no apply
        # run can have left anything for this account's ledger to verify under a name.
        return AssetCheckResult(passed=True, severity=AssetCheckSeverity.WARN,
                                description=f"nothing verified: {exc}")
    return _result(verify_earlier_successes(emergency_account_snapshot,
                                            ledger=storage.ledger(), account=account,
                                            applies=applies(context)))


def all_checks() -> list[Any]:
    return [rejected_rows_share, one_result_per_desired_number, failure_share,
            account_agrees_after_apply, earlier_successes_hold]
