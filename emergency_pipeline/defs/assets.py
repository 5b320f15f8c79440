"""The assets, along the flow of ../shared/design.md:

desired_emergency_settings -> emergency_account_snapshot -> emergency_address_resolution
    -> emergency_settings_plan -> emergency_update_jobs -> emergency_operation_outcomes

Values travel between assets through Dagster's IO manager; each asset also writes its DuckDB
table through the store (which spools while an analyst holds the file) and reports counts.
"""

# No `from __future__ import annotations` in Dagster modules: Dagster reads the annotations
# (config classes, inputs) at definition time.
from datetime import datetime, timezone
from typing import Any

import pandas as pd
from dagster import AssetExecutionContext, Config, Failure, MetadataValue, asset
from dagster_duckdb import DuckDBResource
from pydantic import Field

from emergency_pipeline import jobs as job_runner
from emergency_pipeline.address_resolution import Resolution, is_placeholder, resolve_addresses
from emergency_pipeline.batching import make_batches
from emergency_pipeline.cli_errors import failures_explained
from emergency_pipeline.contract import DEFAULT_MAX_JOBS_IN_FLIGHT, JOB_IN_FLIGHT_STATUSES
from emergency_pipeline.defs.partitions import desired_state_sources
from emergency_pipeline.defs.resources import TelnyxResource, store_for
from emergency_pipeline.desired_state import DesiredState, DesiredStateError, read_desired_state
from emergency_pipeline.outcomes import build_outcomes
from emergency_pipeline.plan import build_plan, plan_summary
from emergency_pipeline.safety import SafetyGuardError, check_disable_guard

GROUP = "emergency"
NUMBER_COLUMNS = ["id", "phone_number", "status", "emergency_enabled",
                  "emergency_address_id", "emergency_status"]


class DesiredStateConfig(Config):
    sheet: str | None = Field(default=None, description="XLSX sheet name (default: the first).")
    default_region: str = Field(default="US", description="Region for national-format numbers.")
    table: str | None = Field(default=None, description="Table, when the source is a DuckDB file.")
    query: str | None = Field(default=None, description="Query, when the source is a DuckDB file.")


class AddressConfig(Config):
    apply: bool = Field(default=False, description="Create the addresses the sheet gives by "
                        "their fields and the account lacks. False only validates them.")


class ApplyConfig(Config):
    apply: bool = Field(default=False, description="Submit the jobs. False only plans (rule 7).")
    max_batch_size: int = Field(default=1000, ge=1, le=1000)
    max_disable_count: int = Field(default=100, description="Most numbers one run may disable.")
    max_disable_share: float = Field(default=0.05, description="Most share of the account one run may disable.")
    allow_mass_disable: bool = Field(default=False, description="Lift the two limits above.")
    follow_timeout_seconds: float = Field(default=900.0, description="How long to follow jobs.")
    max_jobs_in_flight: int = Field(default=DEFAULT_MAX_JOBS_IN_FLIGHT, ge=1)


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _stamp(frame: pd.DataFrame, context: AssetExecutionContext) -> pd.DataFrame:
    return frame.assign(run_id=context.run.run_id, source=context.partition_key)


def _md_table(frame: pd.DataFrame) -> MetadataValue:
    if frame.empty:
        return MetadataValue.md("_none_")
    cols = list(frame.columns)
    lines = ["| " + " | ".join(map(str, cols)) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join("" if pd.isna(v) else str(v) for v in row) + " |"
              for row in frame.itertuples(index=False)]
    return MetadataValue.md("\n".join(lines))


@asset(group_name=GROUP, partitions_def=desired_state_sources)
def desired_emergency_settings(context: AssetExecutionContext, config: DesiredStateConfig,
                               duckdb: DuckDBResource) -> DesiredState:
    """What the operators asked for: validated rows, and the rows rejected with the fix."""
    source = context.partition_key
    try:
        state = read_desired_state(source, sheet=config.sheet,
                                   default_region=config.default_region,
                                   table=config.table, query=config.query)
    except DesiredStateError as exc:
        # An unreadable or empty source is never an instruction: stop before planning.
        raise Failure(description=f"desired state {source!r} not usable: {exc}") from None
    store = store_for(duckdb)
    store.write("desired_settings", _stamp(state.accepted, context))
    store.write("desired_rejections", _stamp(state.rejected, context))
    counts = state.counts()
    context.log.info(f"desired state from {source}: {counts['accepted']} rows accepted, "
                     f"{counts['rejected_rows']} rejected, "
                     f"{counts['collapsed_duplicates']} identical duplicates collapsed")
    context.add_output_metadata({
        "source": source,
        **counts,
        "rejections_sample": _md_table(
            state.rejected[["source_file", "source_row", "column", "value", "reason", "fix"]]
            .head(20)),
    })
    return state


@asset(group_name=GROUP, partitions_def=desired_state_sources)
def emergency_account_snapshot(context: AssetExecutionContext, telnyx: TelnyxResource,
                               duckdb: DuckDBResource) -> dict[str, Any]:
    """The live account: every number's emergency fields, the addresses, the jobs in flight."""
    with failures_explained(telnyx.base_url), telnyx.client(context.log) as client:
        # Jobs first: a number still pending when the jobs are read is treated as in flight
        # even if its job finishes while the numbers are read. The other order would miss
        # a number whose job finished in between and show its old settings as current.
        in_flight = [j for j in client.list_jobs() if j.get("status") in JOB_IN_FLIGHT_STATUSES]
        numbers = client.list_phone_numbers(fields=NUMBER_COLUMNS)  # logs its pages
        addresses = client.list_addresses()
    numbers_df = pd.DataFrame(numbers).reindex(columns=NUMBER_COLUMNS)
    addresses_df = pd.DataFrame(addresses)
    if addresses_df.empty:
        addresses_df = pd.DataFrame(columns=["id"])
    taken = _now()
    store = store_for(duckdb)
    store.write("account_numbers", numbers_df.assign(snapshot_at=taken), mode="replace")
    store.write("account_addresses", addresses_df.astype(str).assign(snapshot_at=taken),
                mode="replace")
    context.add_output_metadata({
        "numbers": len(numbers_df),
        "addresses": len(addresses_df),
        "emergency_enabled": int(numbers_df["emergency_enabled"].fillna(False).astype(bool).sum()),
        "jobs_in_flight": len(in_flight),
    })
    return {"numbers": numbers_df, "addresses": addresses_df, "jobs_in_flight": in_flight,
            "taken_at": taken}


def _in_flight_identifiers(jobs: list[dict[str, Any]]) -> frozenset[str]:
    """Numbers still pending in a job in flight, by id and by E.164."""
    out: set[str] = set()
    for job in jobs:
        for op in job.get("pending_operations", []) or []:
            out.update(v for v in (op.get("id"), op.get("phone_number")) if v)
        if not job.get("pending_operations"):
            # A job just created may not list its operations yet: all its numbers count.
            for p in job.get("phone_numbers", []) or []:
                out.update(v for v in (p.get("id"), p.get("phone_number")) if v)
    return frozenset(out)


@asset(group_name=GROUP, partitions_def=desired_state_sources)
def emergency_address_resolution(context: AssetExecutionContext, config: AddressConfig,
                                 desired_emergency_settings: DesiredState,
                                 emergency_account_snapshot: dict[str, Any],
                                 telnyx: TelnyxResource, duckdb: DuckDBResource) -> Resolution:
    """Addresses given by their fields -> ids: matched in the account, or validated and
    (when applying) created once; rows with a bad or ambiguous address are rejected."""
    store = store_for(duckdb)
    with failures_explained(telnyx.base_url), telnyx.client(context.log) as client:
        res = resolve_addresses(desired_emergency_settings.accepted,
                                emergency_account_snapshot["addresses"], client, store,
                                apply=config.apply, run_id=context.run.run_id, log=context.log)
    if len(res.table):
        store.write("address_resolutions", _stamp(res.table, context).assign(recorded_at=_now()))
    counts = res.counts()
    context.log.info("addresses by their fields: " + (
        ", ".join(f"{k[10:]} {v}" for k, v in counts.items()) or "none in the sheet"))
    context.add_output_metadata({
        "applied": config.apply,
        "distinct_addresses": len(res.table),
        **counts,
        "rows_rejected_for_their_address": len(
            res.rejected[["source_file", "source_row"]].drop_duplicates()),
        "addresses": _md_table(res.table[["address_given", "status", "address_id", "rows",
                                          "candidates", "errors", "suggested"]].head(50)),
    })
    return res


@asset(group_name=GROUP, partitions_def=desired_state_sources)
def emergency_settings_plan(context: AssetExecutionContext,
                            emergency_address_resolution: Resolution,
                            emergency_account_snapshot: dict[str, Any],
                            duckdb: DuckDBResource) -> pd.DataFrame:
    """One action per desired number: enable, disable, change_address, noop or skip."""
    snap = emergency_account_snapshot
    res = emergency_address_resolution
    plan = build_plan(res.accepted, snap["numbers"], res.addresses,
                      in_flight=_in_flight_identifiers(snap["jobs_in_flight"]))
    plan = plan.assign(planned_at=_now())
    store_for(duckdb).write("emergency_plan", _stamp(plan, context))
    counts = plan["action"].value_counts()
    context.log.info("plan: " + ", ".join(f"{a} {n}" for a, n in counts.items()))
    skips = plan.loc[plan["action"].eq("skip"), "reason"].value_counts().rename_axis("reason")
    context.add_output_metadata({
        "desired_numbers": len(plan),
        **{f"action_{a}": int(n) for a, n in counts.items()},
        "by_action_and_target": _md_table(plan_summary(plan)),
        "skip_reasons": _md_table(skips.reset_index(name="numbers")),
    })
    return plan


@asset(group_name=GROUP, partitions_def=desired_state_sources)
def emergency_update_jobs(context: AssetExecutionContext, config: ApplyConfig,
                          emergency_settings_plan: pd.DataFrame,
                          emergency_account_snapshot: dict[str, Any],
                          telnyx: TelnyxResource, duckdb: DuckDBResource) -> dict[str, Any]:
    """Batches submitted as update_emergency_settings jobs (when applying), followed to the end."""
    plan = emergency_settings_plan
    store = store_for(duckdb)
    batches = make_batches(plan, max_size=config.max_batch_size)
    if config.apply and any(is_placeholder(b.emergency_address_id) for b in batches):
        # The resolution only planned its new addresses (its own `apply` was not set).
        raise Failure(description="some numbers target addresses that were not created: set "
                      "apply: true for emergency_address_resolution too (apply_run_config does)")
    try:
        check_disable_guard(plan, len(emergency_account_snapshot["numbers"]),
                            config.max_disable_count, config.max_disable_share,
                            allow=config.allow_mass_disable)
    except SafetyGuardError as exc:
        if config.apply:
            raise Failure(description=str(exc)) from None
        context.log.warning(f"an apply run would be refused: {exc}")
    state = job_runner.ApplyState()
    with failures_explained(telnyx.base_url), telnyx.client(context.log) as client:
        # Jobs of earlier runs that were not seen to the end are followed, not resubmitted.
        job_runner.resume_open_batches(client, store, context.run.run_id, context.log, state)
        if config.apply:
            job_runner.submit_batches(client, store, batches, context.run.run_id, context.log,
                                      state, max_jobs_in_flight=config.max_jobs_in_flight)
        else:
            context.log.info(f"plan-only run: {len(batches)} batch(es) not submitted "
                             "(to submit: --apply on the CLI, apply: true in the run config)")
        job_runner.follow(client, store, context.run.run_id, context.log, state,
                          deadline_seconds=config.follow_timeout_seconds)
    jobs = pd.DataFrame([
        {"batch_id": b, "job_id": j, "status": state.jobs.get(j, {}).get("status"),
         "numbers": len(state.batches[b].identifiers),
         "successful": len(state.jobs.get(j, {}).get("successful_operations", []) or []),
         "failed": len(state.jobs.get(j, {}).get("failed_operations", []) or []),
         "pending": len(state.jobs.get(j, {}).get("pending_operations", []) or [])}
        for b, j in state.batch_job.items()
    ], columns=["batch_id", "job_id", "status", "numbers", "successful", "failed", "pending"])
    if len(jobs):
        store.write("emergency_jobs", _stamp(jobs, context).assign(recorded_at=_now()))
    statuses = jobs["status"].value_counts()
    context.add_output_metadata({
        "applied": config.apply,
        "batches_planned": len(batches),
        "jobs_followed": len(jobs),
        "jobs_resumed_from_earlier_runs": state.resumed,
        "jobs_adopted": state.adopted,
        "numbers_refused_at_submission": len(state.refused),
        **{f"jobs_{s}": int(n) for s, n in statuses.items()},
    })
    return {"applied": config.apply, "results": job_runner.number_results(state),
            "jobs": jobs}


@asset(group_name=GROUP, partitions_def=desired_state_sources)
def emergency_operation_outcomes(context: AssetExecutionContext,
                                 desired_emergency_settings: DesiredState,
                                 emergency_address_resolution: Resolution,
                                 emergency_settings_plan: pd.DataFrame,
                                 emergency_update_jobs: dict[str, Any],
                                 duckdb: DuckDBResource) -> pd.DataFrame:
    """One row per desired number of the run, appended to operation_outcomes (history)."""
    plan = emergency_settings_plan
    planned_at = plan["planned_at"].iloc[0] if len(plan) else _now()
    rejected = pd.concat([desired_emergency_settings.rejected,
                          emergency_address_resolution.rejected], ignore_index=True)
    outcomes = build_outcomes(plan, rejected,
                              emergency_update_jobs["results"], run_id=context.run.run_id,
                              source=context.partition_key,
                              applied=emergency_update_jobs["applied"],
                              planned_at=planned_at, recorded_at=_now())
    store = store_for(duckdb)
    where = store.write("operation_outcomes", outcomes)
    if where == "spool":
        context.log.warning(f"{store.database} is held by another process: the outcomes are "
                            f"kept in {store.spool_dir} and land at the next write")
    by_result = outcomes["result"].value_counts()
    failures = outcomes[outcomes["result"].isin(["failed", "expired"])]
    context.add_output_metadata({
        "rows": len(outcomes),
        **{f"result_{r}": int(n) for r, n in by_result.items()},
        "stored_in": where,
        "failures_sample": _md_table(failures[["phone_number", "result", "error_code",
                                               "error_title", "error_detail",
                                               "error_pointer"]].head(20)),
    })
    return outcomes
