"""The daily run that applies the canonical desired state (stopped until someone starts it)."""

import os

from dagster import (
    DefaultScheduleStatus, RunRequest, ScheduleEvaluationContext, SkipReason, schedule,
)

from emergency_pipeline.defs.reconcile_job import apply_emergency_settings, apply_tags
from emergency_pipeline.defs.partitions import ensure_partition

DEFAULT_CANONICAL = "data/desired_state.csv"


def canonical_source() -> str:
    return os.environ.get("EMERGENCY_PIPELINE_DESIRED_STATE", DEFAULT_CANONICAL)


@schedule(job=apply_emergency_settings, cron_schedule="0 6 * * *",
          execution_timezone="UTC", default_status=DefaultScheduleStatus.STOPPED,
          description="Daily at 06:00 UTC: apply the canonical desired state "
                      "($EMERGENCY_PIPELINE_DESIRED_STATE, default data/desired_state.csv).")
def daily_emergency_reconcile(context: ScheduleEvaluationContext) -> RunRequest | SkipReason:
    key = canonical_source()
    from emergency_pipeline.desired_state.usable import unusable_reason

    # A missing or unusable sheet never becomes a partition; the tick says why.
    problem = unusable_reason(key)
    if problem:
        return SkipReason(f"not run: desired state not usable: {problem}")
    ensure_partition(context.instance, key)
    return RunRequest(partition_key=key, tags=apply_tags())
