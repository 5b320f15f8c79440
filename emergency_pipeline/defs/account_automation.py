"""An account's schedule (its canonical sheet, applied on a cron) and its drop-folder sensor:
the same behaviour as schedules.py and sensors.py, on the account's own job, partitions and
folder, with the apply tag naming the account."""

from pathlib import Path
from typing import Any

from dagster import (
    DefaultScheduleStatus, DefaultSensorStatus, DynamicPartitionsDefinition, RunRequest,
    ScheduleDefinition, ScheduleEvaluationContext, SensorDefinition, SensorEvaluationContext,
    SensorResult, SkipReason,
)

from emergency_pipeline.defs.account_spec import AccountSpec
from emergency_pipeline.defs.partitions import ensure_partition
from emergency_pipeline.defs.run_tags import apply_tags
from emergency_pipeline.defs.sensors import inbox_tick
from emergency_pipeline.desired_state.usable import unusable_reason


def sheet_schedule(spec: AccountSpec, job: Any,
                   partitions: DynamicPartitionsDefinition) -> ScheduleDefinition:
    sheet = str(spec.schedule_sheet)

    def evaluate(context: ScheduleEvaluationContext) -> RunRequest | SkipReason:
        problem = unusable_reason(sheet)
        if problem:    # a missing or unusable sheet never becomes a partition
            return SkipReason(f"not run: desired state not usable: {problem}")
        ensure_partition(context.instance, sheet, partitions.name)
        return RunRequest(partition_key=sheet, tags=apply_tags(spec.name))

    return ScheduleDefinition(
        name=spec.named("scheduled_reconcile"), job=job, cron_schedule=str(spec.schedule_cron),
        execution_timezone=spec.schedule_timezone, execution_fn=evaluate,
        default_status=DefaultScheduleStatus.STOPPED,
        description=f"Account {spec.name}: apply {sheet} on '{spec.schedule_cron}' "
                    f"({spec.schedule_timezone}); stopped until someone starts it.")


def coverage_schedule(spec: AccountSpec, job: Any) -> ScheduleDefinition:
    return ScheduleDefinition(
        name=spec.named("daily_e911_coverage"), job=job, cron_schedule=str(spec.coverage_cron),
        execution_timezone=spec.schedule_timezone,
        default_status=DefaultScheduleStatus.STOPPED,
        description=f"Account {spec.name}: refresh the E911 coverage report on "
                    f"'{spec.coverage_cron}', read-only; stopped until someone starts it.")


def inbox_sensor(spec: AccountSpec, job: Any,
                 partitions: DynamicPartitionsDefinition) -> SensorDefinition:
    inbox = Path(str(spec.inbox))

    def evaluate(context: SensorEvaluationContext) -> SensorResult | SkipReason:
        return inbox_tick(context, inbox, partitions, apply_tags(spec.name))

    return SensorDefinition(
        name=spec.named("desired_state_inbox"), job=job, evaluation_fn=evaluate,
        minimum_interval_seconds=spec.inbox_interval_seconds,
        default_status=DefaultSensorStatus.STOPPED,
        description=f"Account {spec.name}: applies every new or changed CSV/XLSX dropped "
                    f"into {inbox}.")
