"""The assets, along the flow of docs/design.md:

desired_emergency_settings -> emergency_account_snapshot -> emergency_address_resolution
    -> emergency_settings_plan -> emergency_update_jobs -> emergency_operation_outcomes

Each step reads the tables of the steps before it from the run's own working tables
(stage_files.py), writes its own, and hands Dagster only a StageRef (the run-scoped IO
manager keeps it under the run id). The analytics file gets the history rows people query.
An apply run holds the account lease from the snapshot to the outcomes (run_scope.py).
"""

# No `from __future__ import annotations` in Dagster modules: Dagster reads the annotations
# (config classes, inputs) at definition time.
from dagster import AssetExecutionContext, Config, Failure, asset
from dagster_duckdb import DuckDBResource
from pydantic import Field

from emergency_pipeline.addressing.fields import ContactDefaults
from emergency_pipeline.defs import metadata as md
from emergency_pipeline.defs.partitions import desired_state_sources
from emergency_pipeline.defs.resources import PipelineStorage, TelnyxResource
from emergency_pipeline.defs.run_scope import (
    account_lease, mark_and_sweep, run_context, step_failures,
)
from emergency_pipeline.stage_files import StageRef
from emergency_pipeline.steps.account_snapshot import take_snapshot
from emergency_pipeline.steps.address_resolution import resolve_sheet_addresses
from emergency_pipeline.steps.desired_settings import SheetOptions, read_desired_state
from emergency_pipeline.steps.operation_outcomes import RunStages, record_outcomes
from emergency_pipeline.steps.settings_plan import plan_changes
from emergency_pipeline.steps.update_jobs import ApplySettings, update_jobs
from emergency_pipeline.telnyx_contract import DEFAULT_MAX_JOBS_IN_FLIGHT

GROUP = "emergency"


class DesiredStateConfig(Config):
    sheet: str | None = Field(default=None, description="XLSX sheet name (default: the active "
                              "sheet if visible, else the first visible; hidden only if named).")
    default_region: str = Field(default="US", description="Region for national-format numbers.")
    table: str | None = Field(default=None, description="Table, when the source is a DuckDB file.")
    query: str | None = Field(default=None, description="Query, when the source is a DuckDB file.")


class AddressConfig(Config):
    # An apply run (its emergency_pipeline/apply tag) creates the addresses the sheet gives
    # by their fields and the account lacks; a plan-only run only validates them.
    # Telnyx requires first_name, last_name and business_name to create an address; these
    # fill the rows whose sheet gives none (else those rows are rejected with the fix).
    default_first_name: str | None = Field(default=None, description="first_name of new "
                                              "addresses whose row gives none")
    default_last_name: str | None = Field(default=None, description="last_name of new "
                                             "addresses whose row gives none")
    default_business_name: str | None = Field(default=None, description="business_name "
                                                 "of new addresses whose row gives none")


class ApplyConfig(Config):
    # Whether the jobs are submitted is the run's apply tag, not config (rule 7: plan only
    # unless the run says so).
    max_batch_size: int = Field(default=1000, ge=1, le=1000)
    max_disable_count: int = Field(default=100, description="Most numbers one run may disable.")
    max_disable_share: float = Field(default=0.05, description="Most share of the account one run may disable.")
    allow_mass_disable: bool = Field(default=False, description="Lift the two limits above.")
    follow_timeout_seconds: float = Field(default=900.0, description="How long to follow jobs.")
    max_jobs_in_flight: int = Field(default=DEFAULT_MAX_JOBS_IN_FLIGHT, ge=1)
    wave_size: int = Field(default=50, ge=1, description="Batches recorded and sent together.")


@asset(group_name=GROUP, partitions_def=desired_state_sources,
       **md.asset_args("desired_settings", {"csv", "excel", "duckdb"}))
def desired_emergency_settings(context: AssetExecutionContext, config: DesiredStateConfig,
                               telnyx: TelnyxResource, duckdb: DuckDBResource,
                               storage: PipelineStorage) -> StageRef:
    """What the operators asked for: validated rows, and the rows rejected with the fix."""
    mark_and_sweep(context)
    run = run_context(context, telnyx, duckdb, storage)
    with step_failures(run):
        done = read_desired_state(run, SheetOptions(config.sheet, config.default_region,
                                                    config.table, config.query))
    context.add_output_metadata({
        "source": run.source, **done.counts,
        **md.stage(context, duckdb.database, done.ref, done.counts["accepted"],
                   "desired_settings", also=["desired_rejections"]),
        "sheets_read": ", ".join(done.sheets_read) or "none (not a workbook)",
        "rejections_sample": md.table(done.rejections_sample),
    })
    return done.ref


@asset(group_name=GROUP, partitions_def=desired_state_sources,
       **md.asset_args("numbers", {"telnyx", "duckdb"}, telnyx="read", analytics=False))
def emergency_account_snapshot(context: AssetExecutionContext,
                               desired_emergency_settings: StageRef, telnyx: TelnyxResource,
                               duckdb: DuckDBResource, storage: PipelineStorage) -> StageRef:
    """The live account: every number's emergency fields, the addresses, the jobs in flight.

    Read after the desired state (a missing sheet fails before the account is listed) and,
    on an apply run, after the account lease is held (rule 3)."""
    run = run_context(context, telnyx, duckdb, storage)
    with step_failures(run), account_lease(context, telnyx, storage, first=True):
        done = take_snapshot(run)
    context.add_output_metadata({**done.counts, "taken_at": done.taken_at.isoformat(),
                                 **md.stage(context, duckdb.database, done.ref,
                                            done.counts["numbers"],
                                            also=["account_addresses"])})
    return done.ref


@asset(group_name=GROUP, partitions_def=desired_state_sources,
       **md.asset_args("address_resolutions", {"telnyx", "duckdb"}, telnyx="write"))
def emergency_address_resolution(context: AssetExecutionContext, config: AddressConfig,
                                 desired_emergency_settings: StageRef,
                                 emergency_account_snapshot: StageRef,
                                 telnyx: TelnyxResource, duckdb: DuckDBResource,
                                 storage: PipelineStorage) -> StageRef:
    """Addresses given by their fields -> ids: matched in the account, or validated and
    (when applying) created once; rows with a bad or ambiguous address are rejected."""
    run = run_context(context, telnyx, duckdb, storage)
    with step_failures(run), account_lease(context, telnyx, storage):
        done = resolve_sheet_addresses(
            run, desired_emergency_settings, emergency_account_snapshot,
            contact=ContactDefaults(config.default_first_name, config.default_last_name,
                                    config.default_business_name),
            ledger_account=telnyx.account(storage.safety_store().names) if run.applies else "")
    context.add_output_metadata({
        "applied": run.applies, **done.counts,
        **md.stage(context, duckdb.database, done.ref, len(done.resolutions),
                   "address_resolutions"),
        "addresses": md.table(done.resolutions[["address_given", "status", "address_id",
                                                "rows", "candidates", "errors",
                                                "suggested"]]),
    })
    return done.ref


@asset(group_name=GROUP, partitions_def=desired_state_sources,
       **md.asset_args("emergency_plan", {"duckdb"}))
def emergency_settings_plan(context: AssetExecutionContext,
                            emergency_address_resolution: StageRef,
                            emergency_account_snapshot: StageRef,
                            telnyx: TelnyxResource, duckdb: DuckDBResource,
                            storage: PipelineStorage) -> StageRef:
    """One action per desired number: enable, disable, change_address, noop or skip."""
    run = run_context(context, telnyx, duckdb, storage)
    with step_failures(run), account_lease(context, telnyx, storage):
        done = plan_changes(run, emergency_address_resolution, emergency_account_snapshot)
    plan_groups, groups = md.plan_table(done.ref, done.addresses)
    # The plan first: the UI lists the entries in this order.
    context.add_output_metadata({
        "plan": plan_groups, "plan_groups": groups,
        **md.plan_full_list(done.full_list, duckdb.database, run.run_id),
        **done.counts,
        **md.stage(context, duckdb.database, done.ref, done.counts["desired_numbers"],
                   "emergency_plan"),
        "skip_reasons": md.table(done.skip_reasons),
    })
    return done.ref


@asset(group_name=GROUP, partitions_def=desired_state_sources,
       **md.asset_args("emergency_jobs", {"telnyx", "duckdb"}, telnyx="write"))
def emergency_update_jobs(context: AssetExecutionContext, config: ApplyConfig,
                          emergency_settings_plan: StageRef,
                          emergency_account_snapshot: StageRef,
                          telnyx: TelnyxResource, duckdb: DuckDBResource,
                          storage: PipelineStorage) -> StageRef:
    """Batches submitted as update_emergency_settings jobs (when applying), followed to the
    end; every batch recorded in the ledger before its POST, closed with its results."""
    run = run_context(context, telnyx, duckdb, storage)
    with step_failures(run), account_lease(context, telnyx, storage) as hold:
        done = update_jobs(run, hold, emergency_settings_plan, emergency_account_snapshot,
                           settings=ApplySettings(
                               max_batch_size=config.max_batch_size,
                               max_disable_count=config.max_disable_count,
                               max_disable_share=config.max_disable_share,
                               allow_mass_disable=config.allow_mass_disable,
                               follow_timeout_seconds=config.follow_timeout_seconds,
                               max_jobs_in_flight=config.max_jobs_in_flight,
                               wave_size=config.wave_size))
    context.add_output_metadata({
        "applied": done.applied, **done.counts,
        **md.stage(context, duckdb.database, done.ref, done.history_rows, "emergency_jobs",
                   also=["emergency_plan", "operation_outcomes"] if done.applied
                   else ["emergency_plan"]),
        **md.plan_list_of_run(duckdb.database, context.run.run_id),
        "batches": md.batches_table(done.batches),
    })
    return done.ref


@asset(group_name=GROUP, partitions_def=desired_state_sources,
       **md.asset_args("operation_outcomes", {"duckdb"}))
def emergency_operation_outcomes(context: AssetExecutionContext,
                                 desired_emergency_settings: StageRef,
                                 emergency_address_resolution: StageRef,
                                 emergency_settings_plan: StageRef,
                                 emergency_update_jobs: StageRef,
                                 telnyx: TelnyxResource, duckdb: DuckDBResource,
                                 storage: PipelineStorage) -> StageRef:
    """One row per desired number of the run, appended to operation_outcomes (history)."""
    run = run_context(context, telnyx, duckdb, storage)
    stages = RunStages(desired_emergency_settings, emergency_address_resolution,
                       emergency_settings_plan, emergency_update_jobs)
    with step_failures(run):
        done = record_outcomes(run, stages, account_lease(context, telnyx, storage, last=True))
    context.add_output_metadata({
        **done.counts, "stored_in": done.stored_in,
        **md.stage(context, duckdb.database, done.ref, done.counts["rows"],
                   "operation_outcomes", also=["emergency_plan", "emergency_jobs"]),
        **md.plan_list_of_run(duckdb.database, run.run_id),
        "failures_sample": md.table(done.failures_sample),
    })
    if done.submit_errors:
        # Everything known is recorded above; the run still ends failed so people look.
        raise Failure(description=f"{len(done.submit_errors)} batch(es) could not be "
                      "submitted: " + "; ".join(done.submit_errors[:3]))
    return done.ref


