"""Asset checks: the spreadsheet's quality, rule 5 (one result per desired number), the
failure share, a read-back of the account after apply, and at the next snapshot the
read-backs an earlier run left to it.

The checks are partitioned like their assets: unpartitioned, they load every partition of the
asset (a dict) from a persistent IO manager, and failed as soon as a second source had run."""

import os
import warnings
from datetime import datetime
from typing import Any

import pandas as pd
from dagster import (
    AssetCheckExecutionContext, AssetCheckResult, AssetCheckSeverity, AssetIn, PreviewWarning,
    asset_check,
)

from emergency_pipeline.client import TelnyxAPIError
from emergency_pipeline.client.account_identity import AccountUnknown
from emergency_pipeline.defs import metadata as md
from emergency_pipeline.defs.assets import (
    desired_emergency_settings, emergency_account_snapshot, emergency_operation_outcomes,
)
from emergency_pipeline.defs.partitions import desired_state_sources
from emergency_pipeline.defs.resources import PipelineStorage, TelnyxResource
from emergency_pipeline.defs.run_scope import applies
from emergency_pipeline.applying.read_back import (
    VERDICTS, agrees, judge_at_snapshot, plan_reads, read_back, snapshot_pages, target_counts,
    target_of, within_budget,
)
from emergency_pipeline.stage_files import StageRef
from emergency_pipeline.stage_files import query as run_query

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


# A share of the snapshot's requests: a read-back costlier than that now is left to the next
# snapshot (see applying/read_back.py). "inf" reads back every time, 0 never.
READ_BACK_SHARE = ("EMERGENCY_PIPELINE_READ_BACK_MAX_SHARE", 0.05)
DISAGREEING_COLUMNS = ["phone_number", "number_id", "target_enabled", "target_address_id",
                       "live_enabled", "live_address_id"]


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
    outcomes = emergency_operation_outcomes
    # Only the succeeded rows leave the stage file (a tenth of a million-row run at most).
    done = run_query("SELECT number_id, phone_number, target_enabled, target_address_id, "
                     "epoch(recorded_at) FROM o.outcomes WHERE result = 'succeeded'",
                     o=outcomes)
    if not done:
        return AssetCheckResult(passed=True, metadata={"checked": 0},
                                description="no number succeeded in this run: nothing to read back")
    # A number without an id cannot be read back: it stays unmatched below, so it disagrees.
    # (The plan submits only numbers the snapshot knows, so none should lack one.)
    targets = {str(i): target_of(bool(on), a or None)
               for i, _, on, a, _ in done if i is not None}
    reads = plan_reads(*target_counts(snapshot, targets))
    pages = snapshot_pages(snapshot.counts["numbers"])
    share = _threshold(*READ_BACK_SHARE)
    account, recorded_at = telnyx.account(storage.safety_store().names), float(done[0][4])
    rows = [(i, phone, bool(on), a or None) for i, phone, on, a, _ in done if i is not None]
    cost = {"estimated_requests": reads.requests, "snapshot_requests": pages,
            "limit": share}
    if not within_budget(reads.requests, pages, share):
        storage.ledger().defer_verification(account, outcomes.run_id, recorded_at, rows)
        context.log.info(f"{len(rows)} numbers left to verify at the next snapshot "
                         f"({reads.requests} requests now would be over the budget)")
        wrong = _disagreeing([d for d in done if d[0] is None], {})
        return AssetCheckResult(
            passed=not wrong,
            metadata={"checked": 0, "deferred": len(rows), **cost,
                      "disagreeing": len(wrong)},
            description=f"{len(rows)} numbers left to verify at the next snapshot: reading "
                        f"them back now would take {reads.requests} requests, "
                        f"{reads.requests / pages:.0%} of the snapshot's (limit {share:.0%})"
                        + (f"; {_named(wrong)}" if wrong else ""))
    try:
        with telnyx.client(context.log) as client:
            got = read_back(client, targets, reads.listed, context.log)
    except TelnyxAPIError as exc:
        # The outcomes are recorded; a read-back the API refuses now is a failed check to
        # look at, not a failed run.
        return AssetCheckResult(passed=False, severity=AssetCheckSeverity.WARN,
                                metadata={"checked": 0, "succeeded": len(done)},
                                description=f"could not read the account back: {exc}")
    # Verified now against this run's target: an earlier run's pending row for the same
    # number is moot.
    storage.ledger().verified(account, [(r[0], recorded_at) for r in rows])
    wrong = _disagreeing(done, got.records)
    return AssetCheckResult(
        passed=not wrong,
        metadata={"checked": len(done), "deferred": 0, "disagreeing": len(wrong),
                  "sample": md.table(pd.DataFrame(wrong[:md.SAMPLE_ROWS],
                                                  columns=DISAGREEING_COLUMNS)),
                  "read_back_requests": got.requests, "targets_listed": got.targets_listed,
                  "read_by_id": got.by_id, **cost},
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


@asset_check(asset=emergency_account_snapshot, partitions_def=desired_state_sources,
             description="Numbers whose job succeeded in an earlier run that left them to the "
                         "next snapshot (account_agrees_after_apply over its budget) hold "
                         "their target in this snapshot. No request: the snapshot has them.")
def earlier_successes_hold(context: AssetCheckExecutionContext,
                           emergency_account_snapshot: StageRef, telnyx: TelnyxResource,
                           storage: PipelineStorage) -> AssetCheckResult:
    snapshot = emergency_account_snapshot
    try:
        account = telnyx.account(storage.safety_store().names)
    except AccountUnknown as exc:
        # A plan-only run with a key refused the users list and no TELNYX_ACCOUNT: no apply
        # run can have left anything for this account's ledger to verify under a name.
        return AssetCheckResult(passed=True, severity=AssetCheckSeverity.WARN,
                                description=f"nothing verified: {exc}")
    ledger = storage.ledger()
    # Only the rows recorded before this snapshot began: it cannot show later changes.
    taken = datetime.fromisoformat(snapshot.info["taken_at"]).timestamp()
    judged = judge_at_snapshot(snapshot, ledger.to_verify(account, taken))
    counts = {v: int((judged["verdict"] == v).sum()) for v in VERDICTS}
    checked = judged[judged["verdict"] != "in_flight"]
    # A plan-only run only reports: the apply runs own the ledger (they hold the lease).
    forgotten = ledger.verified(account, zip(checked["number_id"], checked["recorded_at"])) \
        if applies(context) and len(checked) else 0
    wrong = judged[judged["verdict"] == "disagreeing"]
    return AssetCheckResult(
        passed=wrong.empty, severity=AssetCheckSeverity.WARN,
        metadata={"pending": len(judged), **counts, "forgotten": forgotten,
                  "sample": md.table(wrong[DISAGREEING_COLUMNS].head(md.SAMPLE_ROWS))},
        description=_hold_description(counts, wrong),
    )


def _hold_description(counts: dict[str, int], wrong: pd.DataFrame) -> str:
    pending = sum(counts.values())
    if not pending:
        return "no earlier success left to verify"
    said = ", ".join(f"{n} {v.replace('_', ' ')}" for v, n in counts.items() if n)
    if wrong.empty:
        return f"{pending} numbers earlier runs left to verify: {said}"
    return (f"{len(wrong)} of {pending} numbers whose job succeeded in an earlier run do not "
            "hold their target now, e.g. " + ", ".join(wrong["phone_number"].head(3).astype(str))
            + f" ({said})")


def all_checks() -> list[Any]:
    return [rejected_rows_share, one_result_per_desired_number, failure_share,
            account_agrees_after_apply, earlier_successes_hold]
