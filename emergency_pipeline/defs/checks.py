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
from emergency_pipeline.defs.assets import (
    desired_emergency_settings, emergency_operation_outcomes,
)
from emergency_pipeline.defs.partitions import desired_state_sources
from emergency_pipeline.defs.resources import TelnyxResource
from emergency_pipeline.read_back import FIELDS, read_back, target_of
from emergency_pipeline.run_tables import StageRef

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
    outcomes = emergency_operation_outcomes.read("outcomes")
    expected = pd.concat([desired.read("accepted")[["source_file", "source_row"]],
                          desired.read("rejected")[["source_file", "source_row"]]]
                         ).drop_duplicates()
    per_row = outcomes.groupby(["source_file", "source_row"]).size().rename("results")
    joined = expected.merge(per_row.reset_index(), how="outer", on=["source_file", "source_row"],
                            indicator=True)
    missing = joined[joined["_merge"] == "left_only"]
    unexpected = joined[joined["_merge"] == "right_only"]
    repeated = joined[joined["results"] > 1]
    numbers = outcomes[outcomes["result"] != "rejected"]
    number_key = numbers["number_id"].fillna(numbers["phone_number"])
    repeated_numbers = number_key[number_key.notna() & number_key.duplicated(keep=False)]
    no_result = int(outcomes["result"].isna().sum())
    passed = missing.empty and unexpected.empty and repeated.empty and repeated_numbers.empty \
        and no_result == 0
    return AssetCheckResult(
        passed=bool(passed),
        metadata={"desired_rows": len(expected), "outcome_rows": len(outcomes),
                  "rows_without_result": len(missing), "results_without_row": len(unexpected),
                  "rows_with_several_results": len(repeated),
                  "numbers_with_several_results": int(repeated_numbers.nunique()),
                  "results_left_empty": no_result},
    )


@asset_check(asset=emergency_operation_outcomes, partitions_def=desired_state_sources,
             description="Share of submitted numbers that failed or expired stays low.")
def failure_share(emergency_operation_outcomes: StageRef) -> AssetCheckResult:
    outcomes = emergency_operation_outcomes.read("outcomes")
    submitted = outcomes[outcomes["result"].isin(["succeeded", "failed", "expired", "pending"])]
    failed = submitted["result"].isin(["failed", "expired"]).sum()
    share = failed / len(submitted) if len(submitted) else 0.0
    limit = _threshold("EMERGENCY_PIPELINE_MAX_FAILURE_SHARE", 0.1)
    return AssetCheckResult(
        passed=bool(share <= limit), severity=AssetCheckSeverity.WARN,
        metadata={"submitted": len(submitted), "failed_or_expired": int(failed),
                  "share": round(float(share), 4), "limit": limit},
    )


@asset_check(asset=emergency_operation_outcomes, partitions_def=desired_state_sources,
             description="After apply, the account read back agrees with the plan for every "
                         "number whose job succeeded.")
def account_agrees_after_apply(context: AssetCheckExecutionContext,
                               emergency_operation_outcomes: StageRef,
                               telnyx: TelnyxResource) -> AssetCheckResult:
    outcomes = emergency_operation_outcomes.read("outcomes")
    done = outcomes[outcomes["result"] == "succeeded"]
    if done.empty:
        return AssetCheckResult(passed=True, metadata={"checked": 0},
                                description="no number succeeded in this run: nothing to read back")
    # A number without an id cannot be read back: it stays unmatched below, so it disagrees.
    targets = {str(i): target_of(bool(on), None if pd.isna(a) else str(a))
               for i, on, a in zip(done["number_id"], done["target_enabled"],
                                   done["target_address_id"]) if not pd.isna(i)}
    try:
        with telnyx.client(context.log) as client:
            got = read_back(client, targets, context.log)
    except TelnyxAPIError as exc:
        # The outcomes are recorded; a read-back the API refuses now is a failed check to
        # look at, not a failed run.
        return AssetCheckResult(passed=False, severity=AssetCheckSeverity.WARN,
                                metadata={"checked": 0, "succeeded": len(done)},
                                description=f"could not read the account back: {exc}")
    live = pd.DataFrame(list(got.records.values()), columns=list(FIELDS))
    merged = done.assign(number_id=done["number_id"].astype(str)).merge(
        live, left_on="number_id", right_on="id", how="left", suffixes=("", "_live"))
    want_addr = merged["target_address_id"].where(merged["target_enabled"].astype(bool))
    agree = (merged["emergency_enabled"].astype("boolean") == merged["target_enabled"].astype("boolean")) & (
        merged["emergency_address_id"].fillna("") == want_addr.fillna(""))
    wrong = merged[~agree.fillna(False)]
    return AssetCheckResult(
        passed=wrong.empty,
        metadata={"checked": len(merged), "disagreeing": len(wrong),
                  "sample": ", ".join(map(str, wrong["phone_number"].head(10))),
                  "read_back_requests": got.requests, "targets_listed": got.targets_listed,
                  "read_by_id": got.by_id},
        description=None if wrong.empty else
        f"{len(wrong)} numbers whose job succeeded do not hold their target, e.g. "
        + ", ".join(map(str, wrong["phone_number"].head(3))),
    )


def all_checks() -> list[Any]:
    return [rejected_rows_share, one_result_per_desired_number, failure_share,
            account_agrees_after_apply]
