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
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
from dagster import AssetExecutionContext, Config, Failure, asset
from dagster_duckdb import DuckDBResource
from pydantic import Field

from emergency_pipeline.addressing.resolution import is_placeholder
from emergency_pipeline.addressing.fields import ContactDefaults
from emergency_pipeline.planning.batching import other_names, plan_batches
from emergency_pipeline.one_line_errors import failures_explained
from emergency_pipeline.client import job_numbers
from emergency_pipeline.telnyx_contract import DEFAULT_MAX_JOBS_IN_FLIGHT, JOB_IN_FLIGHT_STATUSES
from emergency_pipeline.defs import metadata as md
from emergency_pipeline.defs.partitions import desired_state_sources
from emergency_pipeline.defs.resources import (
    PipelineStorage, TelnyxResource, store_at, store_for,
)
from emergency_pipeline.defs.run_scope import (
    account_lease, applies, mark_and_sweep, run_context, stamp, step_failures, tables,
)
from emergency_pipeline.desired_state import DesiredStateError, write_desired_state
from emergency_pipeline.analytics.parquet_history import export_runs, history_url
from emergency_pipeline.analytics.outcomes import OUTCOMES_SQL, RESULT_FIELDS, outcome_views
from emergency_pipeline.planning.plan import plan_views, write_plan
from emergency_pipeline.analytics.publish import publish_orphans, publish_run
from emergency_pipeline.applying.read_back import resumed_successes
from emergency_pipeline.stage_files import StageRef, attach, attached, prune
from emergency_pipeline.planning.disable_guard import SafetyGuardError, check_disable_guard
from emergency_pipeline.account_snapshot import list_numbers_into
from emergency_pipeline.safety_store import Ledger
from emergency_pipeline.applying.submission import RunIdentity, Settings, Submission, submit_and_follow
from emergency_pipeline.steps.address_resolution import resolve_sheet_addresses

GROUP = "emergency"
RESULT_COLUMNS = ["identifier", *RESULT_FIELDS]


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


def _now() -> datetime:
    return datetime.now(timezone.utc)


@asset(group_name=GROUP, partitions_def=desired_state_sources,
       **md.asset_args("desired_settings", {"csv", "excel", "duckdb"}))
def desired_emergency_settings(context: AssetExecutionContext, config: DesiredStateConfig,
                               duckdb: DuckDBResource, storage: PipelineStorage) -> StageRef:
    """What the operators asked for: validated rows, and the rows rejected with the fix."""
    source = context.partition_key
    mark_and_sweep(context)
    stage = tables(context, storage)
    try:
        with stage.building("desired") as con:
            # Read into the stage file chunk by chunk: memory bounded by the chunk, not the
            # sheet (5,000,000 rows stay under a gigabyte).
            desired = write_desired_state(source, con, sheet=config.sheet,
                                          default_region=config.default_region,
                                          table=config.table, query=config.query)
            sample = con.execute(
                "SELECT source_file, source_row, \"column\", value, reason, fix FROM rejected "
                "LIMIT 20").df()
    except DesiredStateError as exc:
        # An unreadable or empty source is never an instruction: stop before planning.
        text = str(exc)   # most errors start with the file already: name it once
        raise Failure(description="desired state not usable: " + (
            text if text.startswith(source) else f"{source}: {text}")) from None
    counts = desired.counts()
    ref = stage.ref("desired", counts)
    store = store_for(duckdb)
    store.copy_from("desired_settings", ref.path, _stamped("src.accepted", context),
                    rows=counts["accepted"])
    store.copy_from("desired_rejections", ref.path, _stamped("src.rejected", context),
                    rows=counts["rejected_rows"])
    dups = counts["collapsed_duplicates"]
    context.log.info(f"desired state from {source}: {counts['accepted']} rows accepted, "
                     f"{counts['rejected_rows']} rejected by the sheet's checks (the address "
                     f"step may reject more; the outcomes count all), {dups} identical "
                     f"duplicate{'' if dups == 1 else 's'} collapsed"
                     + (f"; sheets read: {', '.join(desired.sheets_read)}" if desired.sheets_read
                        else ""))
    context.add_output_metadata({
        "source": source, **counts,
        **md.stage(context, duckdb.database, ref, counts["accepted"], "desired_settings",
                   also=["desired_rejections"]),
        "sheets_read": ", ".join(desired.sheets_read) or "none (not a workbook)",
        "rejections_sample": md.table(sample),
    })
    return ref


def _in_flight_rows(jobs: list[dict]) -> pd.DataFrame:
    """(identifier, job_id) for every number a job in flight names, by id and by E.164."""
    rows = [{"identifier": n, "job_id": str(job.get("id"))}
            for job in jobs for n in sorted(job_numbers(job))]
    return pd.DataFrame(rows, columns=["identifier", "job_id"])


@asset(group_name=GROUP, partitions_def=desired_state_sources,
       **md.asset_args("numbers", {"telnyx", "duckdb"}, telnyx="read", analytics=False))
def emergency_account_snapshot(context: AssetExecutionContext,
                               desired_emergency_settings: StageRef, telnyx: TelnyxResource,
                               duckdb: DuckDBResource, storage: PipelineStorage) -> StageRef:
    """The live account: every number's emergency fields, the addresses, the jobs in flight.

    Read after the desired state (a missing sheet fails before the account is listed) and,
    on an apply run, after the account lease is held (rule 3)."""
    stage = tables(context, storage)
    with account_lease(context, telnyx, storage, first=True), \
            failures_explained(telnyx.base_url), telnyx.client(context.log) as client, \
            stage.building("snapshot") as con:
        taken = _now()
        # Jobs first: a number still pending when the jobs are read is treated as in flight
        # even if its job finishes while the numbers are read. The other order would miss
        # a number whose job finished in between and show its old settings as current.
        in_flight = [j for j in client.list_jobs() if j.get("status") in JOB_IN_FLIGHT_STATUSES]
        listed = list_numbers_into(client, con, "numbers")
        addresses = pd.DataFrame(client.list_addresses())
        if addresses.empty:
            addresses = pd.DataFrame(columns=["id"])
        addresses = addresses.astype(str).where(addresses.notna(), None)
        con.register("frame", addresses)
        con.execute("CREATE TABLE addresses AS SELECT * FROM frame")
        con.register("frame", _in_flight_rows(in_flight))
        con.execute("CREATE TABLE in_flight AS SELECT * FROM frame")
        con.unregister("frame")
        # fetchall: DuckDB 2 refuses further work while a result is left half-read.
        enabled = con.execute("SELECT count(*) FILTER (emergency_enabled) FROM numbers"
                              ).fetchall()[0][0]
    counts = {"numbers": listed["numbers"], "addresses": len(addresses),
              "jobs_in_flight": len(in_flight), "emergency_enabled": int(enabled)}
    ref = stage.ref("snapshot", counts, info={"taken_at": taken.isoformat()})
    store_for(duckdb).write("account_addresses", addresses.assign(snapshot_at=taken),
                            mode="replace")
    context.add_output_metadata({**counts, "taken_at": taken.isoformat(),
                                 **md.stage(context, duckdb.database, ref, counts["numbers"],
                                            also=["account_addresses"])})
    return ref


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
    """One action per desired number: enable, disable, change_address, noop or skip.
    Planned in SQL (plan.write_plan) over the resolution's and the snapshot's tables."""
    stage = tables(context, storage)
    rows = max(emergency_address_resolution.rows, emergency_account_snapshot.rows)
    with account_lease(context, telnyx, storage), stage.building("plan", rows) as con:
        attach(con, r=emergency_address_resolution, s=emergency_account_snapshot)
        plan_views(con, "r.accepted", "s.numbers", "r.addresses", "s.in_flight")
        write_plan(con, "plan")
        by_action = dict(con.execute("SELECT action, count(*) FROM plan GROUP BY ALL "
                                     "ORDER BY ALL").fetchall())
        skips = con.execute("SELECT reason, count(*) AS numbers FROM plan WHERE action = "
                            "'skip' GROUP BY ALL ORDER BY numbers DESC, reason LIMIT 50").df()
        con.execute("DETACH r")
        con.execute("DETACH s")
    counts = {"desired_numbers": sum(by_action.values()),
              **{f"action_{a}": int(n) for a, n in by_action.items()}}
    ref = stage.ref("plan", counts)
    store_for(duckdb).copy_from("emergency_plan", ref.path, _stamped("src.plan", context),
                                rows=counts["desired_numbers"])
    context.log.info("plan: " + (", ".join(f"{a} {n}" for a, n in by_action.items())
                                 or "no rows"))
    addresses = emergency_address_resolution.read("addresses")
    plan_groups, groups = md.plan_table(ref, addresses)
    # The plan first: the UI lists the entries in this order.
    context.add_output_metadata({
        "plan": plan_groups, "plan_groups": groups,
        **md.plan_full_list(ref, addresses, duckdb.database, context.run.run_id),
        **counts,
        **md.stage(context, duckdb.database, ref, counts["desired_numbers"], "emergency_plan"),
        "skip_reasons": md.table(skips),
    })
    return ref


def export_history(store, configured: str | None, telnyx: TelnyxResource,
                   run_id: str) -> dict[str, int]:
    """This run's history rows to the shared history location, when there is one."""
    url = history_url(configured)
    if not url:
        return {}
    return export_runs(store, url, telnyx.account_label(), [run_id], run_id)


def _stamped(table: str, context: AssetExecutionContext) -> str:
    """SELECT of a stage table with the run id and source, as the history tables hold it."""
    def text(v: str) -> str:
        return "'" + v.replace("'", "''") + "'"
    return (f"SELECT *, {text(context.run.run_id)} AS run_id, "
            f"{text(context.partition_key)} AS source FROM {table}")


def _defer_resumed_successes(context: AssetExecutionContext, ledger: Ledger,
                             run: RunIdentity, done: Submission, snapshot: StageRef) -> None:
    """Earlier runs' jobs this run saw succeed: left to the next snapshot to verify."""
    now = _now().timestamp()
    for earlier, rows in resumed_successes(done.results, run.run_id, snapshot).items():
        ledger.defer_verification(run.account, earlier, now, rows)
        context.log.info(f"{len(rows)} numbers whose job of run {earlier} succeeded in this "
                         "run are left to verify at the next snapshot")


@asset(group_name=GROUP, partitions_def=desired_state_sources,
       **md.asset_args("emergency_jobs", {"telnyx", "duckdb"}, telnyx="write"))
def emergency_update_jobs(context: AssetExecutionContext, config: ApplyConfig,
                          emergency_settings_plan: StageRef,
                          emergency_account_snapshot: StageRef,
                          telnyx: TelnyxResource, duckdb: DuckDBResource,
                          storage: PipelineStorage) -> StageRef:
    """Batches submitted as update_emergency_settings jobs (when applying), followed to the
    end; every batch recorded in the ledger before its POST, closed with its results."""
    apply = applies(context)
    with attached(p=emergency_settings_plan) as con:
        batches = plan_batches(con, "p.plan", max_size=config.max_batch_size)
        aliases = other_names(con, "p.plan") if apply else {}
    if apply and any(is_placeholder(b.emergency_address_id) for b in batches):
        # Cannot be configured (one switch for the run): a bug, never sent.
        raise Failure(description="some numbers target addresses the resolution did not "
                      "create: nothing submitted; report this with the run id")
    try:
        check_disable_guard(emergency_settings_plan.counts.get("action_disable", 0),
                            emergency_account_snapshot.counts["numbers"],
                            config.max_disable_count, config.max_disable_share,
                            allow=config.allow_mass_disable)
    except SafetyGuardError as exc:
        if apply:
            raise Failure(description=str(exc)) from None
        context.log.warning(f"an apply run would be refused: {exc}")
    if not apply:
        context.log.info(f"plan-only run: {len(batches)} batch(es) not submitted (apply them "
                         "with --apply, or the run tag emergency_pipeline/apply: <account>)")
        ref = tables(context, storage).write(
            "submission", {"results": pd.DataFrame(columns=RESULT_COLUMNS).astype(str)},
            counts={"batches_planned": len(batches)}, info={"applied": False, "errors": []})
        context.add_output_metadata({
            "applied": False, "batches_planned": len(batches),
            **md.stage(context, duckdb.database, ref, 0, "emergency_jobs",
                       also=["emergency_plan"]),
            **md.plan_list_of_run(duckdb.database, context.run.run_id),
            "batches": md.batches_table(batches),
        })
        return ref
    with account_lease(context, telnyx, storage) as hold, \
            failures_explained(telnyx.base_url), telnyx.client(context.log) as client:
        # Absolute: a run that resumes this one from another working folder must find it.
        run = RunIdentity(context.run.run_id, hold.holder.account, context.partition_key,
                          str(Path(duckdb.database).resolve()))
        ledger = storage.ledger()
        done = submit_and_follow(
            client, ledger, run, batches,
            snapshot_at=datetime.fromisoformat(emergency_account_snapshot.info["taken_at"]),
            aliases=aliases, log=context.log, fence=hold,
            settings=Settings(max_jobs_in_flight=config.max_jobs_in_flight,
                              wave_size=config.wave_size,
                              follow_timeout_seconds=config.follow_timeout_seconds))
        publish_orphans(ledger, run.account, run.run_id, context.log, store_at,
                        own_db=run.outcomes_db, account_label=telnyx.account_label())
        _defer_resumed_successes(context, ledger, run, done, emergency_account_snapshot)
    results = pd.DataFrame(list(done.results.values()), columns=RESULT_COLUMNS)
    jobs = pd.DataFrame(done.batches, columns=["batch_id", "job_id", "state", "job_status",
                                               "numbers", "emergency_enabled",
                                               "emergency_address_id"])
    counts = {"batches_planned": len(batches), "jobs": int(jobs["job_id"].notna().sum()),
              "batches_resumed_from_earlier_runs": done.resumed,
              "jobs_adopted": done.adopted, "batches_abandoned": done.abandoned,
              "numbers_left_to_others_jobs": done.taken_out,
              **{f"batches_{s}": int(n) for s, n in jobs["state"].value_counts().items()}}
    ref = tables(context, storage).write("submission", {"results": results, "batches": jobs},
                                       counts=counts,
                                       info={"applied": True, "errors": done.errors})
    if len(jobs):
        store_for(duckdb).write("emergency_jobs", stamp(jobs, context).assign(
            recorded_at=_now()))
    context.add_output_metadata({
        "applied": True, **counts,
        **md.stage(context, duckdb.database, ref, len(jobs), "emergency_jobs",
                   also=["emergency_plan", "operation_outcomes"]),
        **md.plan_list_of_run(duckdb.database, context.run.run_id),
        "batches": md.batches_table(jobs),
    })
    return ref


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
    stage = tables(context, storage)
    with account_lease(context, telnyx, storage, last=True):
        with stage.building("outcomes", rows=emergency_settings_plan.rows) as con:
            stages = {"p": emergency_settings_plan, "sub": emergency_update_jobs,
                      "d": desired_emergency_settings, "r": emergency_address_resolution}
            attach(con, **stages)
            outcome_views(con, "p.plan", "sub.results", ["d.rejected", "r.rejected"],
                          run_id=context.run.run_id, source=context.partition_key,
                          applied=bool(emergency_update_jobs.info["applied"]),
                          account=telnyx.account_label())
            con.execute(f"CREATE TABLE outcomes AS {OUTCOMES_SQL}")
            by_result = dict(con.execute("SELECT result, count(*) FROM outcomes GROUP BY ALL "
                                         "ORDER BY ALL").fetchall())
            failures = con.execute(
                # error_detail cut short: a long one made each row of the UI's table tall
                # (the SQL in the metadata gives it whole).
                "SELECT phone_number, result, error_code, error_title, "
                "CASE WHEN length(error_detail) > 60 THEN left(error_detail, 59) || '…' "
                "ELSE error_detail END AS error_detail, error_pointer FROM outcomes "
                "WHERE result IN ('failed', 'expired') LIMIT 20").df()
            for alias in stages:
                con.execute(f"DETACH {alias}")
        counts = {"rows": sum(by_result.values()),
                  **{f"result_{r}": int(n) for r, n in by_result.items()}}
        context.log.info("results: " + ", ".join(f"{r} {n}" for r, n in by_result.items()))
        ref = stage.ref("outcomes", counts)
        store = store_for(duckdb)
        where = publish_run(store, ref, storage.ledger() if applies(context) else None,
                            context.run.run_id)
    if where == "spool":
        context.log.warning(f"{store.database} is held by another process: the outcomes are "
                            f"kept in {store.spool_dir} and land at the next write")
    exported = export_history(store, storage.history_url, telnyx, context.run.run_id)
    if exported:
        context.log.info(f"history: {sum(exported.values())} rows as Parquet files to "
                         f"{history_url(storage.history_url)}")
    prune(storage.directory, storage.keep_run_tables_days * 86400, keep={context.run.run_id})
    context.add_output_metadata({
        **counts, "stored_in": where,
        **md.stage(context, duckdb.database, ref, counts["rows"], "operation_outcomes",
                   also=["emergency_plan", "emergency_jobs"]),
        **md.plan_list_of_run(duckdb.database, context.run.run_id),
        "failures_sample": md.table(failures),
    })
    errors = emergency_update_jobs.info.get("errors") or []
    if errors:
        # Everything known is recorded above; the run still ends failed so people look.
        raise Failure(description=f"{len(errors)} batch(es) could not be submitted: "
                      + "; ".join(errors[:3]))
    return ref
