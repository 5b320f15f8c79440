"""What the Dagster UI shows of each asset: its kinds, owners, tags and column schema (the
definition), and per materialization its row count, real tables, the analytics file, and the
links between a run's plan, jobs and outcomes (the run, the SQL of its rows, the plan's CSV).

Kept apart from the assets' bodies so that a step's work and its description change apart.
"""

# No `from __future__ import annotations`: a Dagster module (see assets.py).
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd
from dagster import AssetExecutionContext, MetadataValue, TableColumn, TableRecord, TableSchema

from emergency_pipeline.planning import report as plan_report
from emergency_pipeline.stage_files import StageRef
from emergency_pipeline.stage_files import query as run_query

OWNERS = ["team:operations"]
# Rows a sample table shows: enough to see a pattern, few enough to read on one screen.
SAMPLE_ROWS = 20
# Plan groups shown: every action and the commonest targets and skip reasons.
PLAN_GROUPS_SHOWN = 50
# Numbers named per plan group in the UI (the CLI names 10): the cell stays one short line.
PLAN_NUMBERS_SHOWN = 3

# (name, Dagster type, description) of the table each asset writes for people to query.
_STAMP = [("run_id", "string", "the Dagster run that wrote the row"),
          ("source", "string", "the desired-state source (the partition key)")]
_SOURCE_ROW = [("source_file", "string", "the file the row came from"),
               ("source_row", "int", "its row in that file (1 = the header)")]
COLUMNS = {
    "desired_settings": [
        *_SOURCE_ROW,
        ("phone_number", "string", "E.164, when the row gave a number"),
        ("number_id", "string", "Telnyx number id, when the row gave one"),
        ("emergency_enabled", "bool", "E911 on (true) or off"),
        ("emergency_address_id", "string", "the address id the row gave"),
        ("extras", "string", "the row's other columns, as JSON"),
        ("address_fields", "string", "the address the row gave by its fields, as JSON"),
        ("address_columns", "string", "the sheet's columns those fields came from"),
        *_STAMP],
    "numbers": [
        ("id", "string", "Telnyx number id"),
        ("phone_number", "string", "E.164"),
        ("status", "string", "the number's status (active, port-pending, ...)"),
        ("emergency_enabled", "bool", "E911 on now"),
        ("emergency_address_id", "string", "its E911 address now"),
        ("emergency_status", "string", "active, provisioning, deprovisioning, disabled, ...")],
    "address_resolutions": [
        *_STAMP,
        ("address_key", "string", "the address normalised (what rows are grouped by)"),
        ("address_given", "string", "the address as the sheet gave it"),
        ("status", "string", "matched, matched_by_id, created, adopted, would_create, "
                             "ambiguous, invalid, disagrees, failed"),
        ("address_id", "string", "the id used (a new-address-... placeholder when planned)"),
        ("candidates", "string", "the account's addresses it could be, when ambiguous"),
        ("rows", "int", "sheet rows giving this address"),
        ("phone_numbers", "string", "their numbers"),
        ("errors", "string", "Telnyx's validation errors"),
        ("suggested", "string", "Telnyx's suggested correction"),
        ("detail", "string", "what was done and why"),
        ("recorded_at", "datetime", "when it was recorded")],
    "emergency_plan": [
        *_SOURCE_ROW,
        ("phone_number", "string", "E.164"),
        ("number_id", "string", "Telnyx number id"),
        ("identifier", "string", "what the job sends: the id or the E.164 number"),
        ("id_kind", "string", "id or e164"),
        ("target_enabled", "bool", "E911 on (true) or off after the change"),
        ("target_address_id", "string", "the address id after the change"),
        ("address_given", "string", "the address as the sheet gave it"),
        ("current_enabled", "bool", "E911 on now"),
        ("current_address_id", "string", "its address now"),
        ("current_emergency_status", "string", "its emergency_status now"),
        ("number_status", "string", "the number's status now"),
        ("action", "string", "enable, disable, change_address, noop or skip"),
        ("reason", "string", "why (skips)"),
        ("extras", "string", "the row's other columns, as JSON"),
        ("planned_at", "datetime", "when it was planned"),
        *_STAMP],
    "emergency_jobs": [
        ("batch_id", "string", "the batch (a hash of its target and numbers)"),
        ("job_id", "string", "Telnyx's job id"),
        ("state", "string", "the batch in the ledger: closed, open, abandoned, ..."),
        ("job_status", "string", "pending, in_progress, completed, failed, expired"),
        ("numbers", "int", "numbers in the batch"),
        ("emergency_enabled", "bool", "the batch's target: E911 on or off"),
        ("emergency_address_id", "string", "the batch's target address"),
        *_STAMP,
        ("recorded_at", "datetime", "when it was recorded")],
    "operation_outcomes": [
        *_STAMP, *_SOURCE_ROW,
        ("phone_number", "string", "E.164"),
        ("number_id", "string", "Telnyx number id"),
        ("action", "string", "what was planned"),
        ("target_enabled", "bool", "the target: E911 on or off"),
        ("target_address_id", "string", "the target address id"),
        ("result", "string", "succeeded, failed, pending, expired, unchanged, skipped, "
                             "planned or rejected"),
        ("reason", "string", "why (skips, rejections)"),
        ("batch_id", "string", "the batch it was sent in"),
        ("job_id", "string", "Telnyx's job id"),
        ("job_status", "string", "the job's status at the end of the run"),
        ("error_code", "string", "Telnyx's error code"),
        ("error_title", "string", "Telnyx's error title"),
        ("error_detail", "string", "Telnyx's error detail"),
        ("error_pointer", "string", "what the error points at (source.pointer)"),
        ("extras", "string", "the row's other columns, as JSON"),
        ("planned_at", "datetime", "when it was planned"),
        ("submitted_at", "datetime", "when its job was submitted"),
        ("finished_at", "datetime", "when its job ended"),
        ("recorded_at", "datetime", "when the row was recorded"),
        ("address_given", "string", "the address as the sheet gave it"),
        ("enabled_before", "bool", "E911 on before the change (the run's snapshot)"),
        ("address_id_before", "string", "its address id before the change"),
        ("applied", "bool", "the run applied (false: it only planned)"),
        ("account", "string", "the account (TELNYX_ACCOUNT, else the API's host)")],
    "e911_coverage": [
        ("account", "string", "the account (TELNYX_ACCOUNT, else the API's host)"),
        ("run_id", "string", "the coverage run that read the account"),
        ("taken_at", "datetime", "when the account was read"),
        ("number_id", "string", "Telnyx number id"),
        ("phone_number", "string", "E.164"),
        ("status", "string", "the number's status (active, port-pending, ...)"),
        ("emergency_enabled", "bool", "E911 on now"),
        ("emergency_status", "string", "active, provisioning, deprovisioning, disabled, ..."),
        ("emergency_address_id", "string", "its E911 address now"),
        ("address", "string", "that address as text"),
        ("address_validated", "bool", "the address's validate_address (false: created "
                                      "without validation for emergency use; NULL: not said)"),
        ("managed_by", "string", "the desired-state sources whose latest run has the number"),
        ("last_applied_enabled", "bool", "the target an applied run last set or found so"),
        ("last_applied_address_id", "string", "... its address"),
        ("last_applied_at", "datetime", "when that result was recorded"),
        ("last_applied_run", "string", "the run that applied it"),
        ("last_result", "string", "its latest result in an applied run"),
        ("last_result_at", "datetime", "when that result was recorded"),
        ("active_without_e911", "bool", "status active and E911 off"),
        ("unmanaged", "bool", "no desired-state source has it"),
        ("drift", "bool", "E911 or its address differs from the last applied target"),
        ("address_not_validated", "bool", "its E911 address says validate_address false")],
}


def column_schema(table: str) -> TableSchema:
    return TableSchema(columns=[TableColumn(name, kind, description)
                                for name, kind, description in COLUMNS[table]])


def asset_args(table: str, kinds: Iterable[str], telnyx: str | None = None,
               analytics: bool = True) -> dict[str, Any]:
    """The @asset arguments that describe a step: kinds, owners, tags, the column schema of
    its table and, when the table is in the analytics file (`analytics`), its name there.
    `telnyx`: "read" or "write", what the step does to the account."""
    tags = {"domain": "e911", **({"telnyx": telnyx} if telnyx else {})}
    metadata: dict[str, Any] = {"dagster/column_schema": column_schema(table)}
    if analytics:
        metadata["dagster/table_name"] = table
    return {"kinds": set(kinds), "owners": OWNERS, "tags": tags, "metadata": metadata}


def database_path(database: str) -> str:
    return str(Path(database).resolve())


def run_sql(table: str, run_id: str) -> str:
    return f"SELECT * FROM {table} WHERE run_id = '{run_id}'"


def stage(context: AssetExecutionContext, database: str, ref: StageRef, rows: int,
          table: str | None = None, also: Iterable[str] = ()) -> dict[str, Any]:
    """The metadata every step adds: its table's rows (`dagster/row_count`), the run's stage
    file, the analytics file, the run, and the SQL of this run's rows in `table` and in the
    `also` tables (how the plan, the jobs and the outcomes of one run find each other)."""
    run_id = context.run.run_id
    out: dict[str, Any] = {
        "dagster/row_count": int(rows),
        "tables": MetadataValue.path(database_path(ref.path)),   # absolute, as duckdb.database
        "duckdb.database": MetadataValue.path(database_path(database)),
        "run": MetadataValue.dagster_run(run_id),
    }
    for name in ([table] if table else []) + list(also):
        out[f"sql_{name}"] = MetadataValue.text(run_sql(name, run_id))
    return out


def _cell(value: Any) -> str | int | float | bool | None:
    """A value a table cell holds (TableRecord takes str, int, float, bool or None)."""
    if isinstance(value, (list, tuple)):
        return ", ".join(map(str, value))
    if value is None or value is pd.NA or (isinstance(value, float) and value != value):
        return None
    if hasattr(value, "item"):        # numpy scalars
        value = value.item()
    if isinstance(value, (str, int, float, bool)):
        return value
    if pd.isna(value):                # NaT
        return None
    return str(value)


def _kind(series: pd.Series) -> str:
    if pd.api.types.is_bool_dtype(series):
        return "bool"
    if pd.api.types.is_integer_dtype(series):
        return "int"
    if pd.api.types.is_float_dtype(series):
        return "float"
    if pd.api.types.is_datetime64_any_dtype(series):
        return "datetime"
    return "string"


def table(frame: pd.DataFrame, limit: int = SAMPLE_ROWS,
          descriptions: Mapping[str, str] | None = None,
          kinds: Mapping[str, str] | None = None) -> MetadataValue:
    """The first `limit` rows of `frame` as a real table in the UI, with its schema."""
    descriptions, kinds = descriptions or {}, kinds or {}
    schema = TableSchema(columns=[
        TableColumn(str(c), kinds.get(c) or _kind(frame[c]), descriptions.get(c))
        for c in frame.columns])
    records = [TableRecord(data={str(c): _cell(v) for c, v in zip(frame.columns, row)})
               for row in frame.head(limit).itertuples(index=False, name=None)]
    return MetadataValue.table(records=records, schema=schema)


PLAN_TABLE = {
    "action": "enable, change_address, disable, skip or noop",
    "numbers": "numbers in the group",
    "target_or_reason": "the address after the change, as a person reads it; for a skip, why",
    "target_address_id": "the address's Telnyx id",
    "first_numbers": f"the first {PLAN_NUMBERS_SHOWN} (the full list has all, with their ids)",
    "and_more": "numbers of the group not named here",
}
_ID_AFTER_NUMBER = re.compile(r" \(id [^)]*\)$")


def plan_table(plan: StageRef, addresses: pd.DataFrame | None) -> tuple[MetadataValue, int]:
    """The plan as a reviewer reads it: one row per action and target address (and per skip
    reason), the address as text beside its id, the first numbers and "and N more"; with the
    number of groups (the table shows the first PLAN_GROUPS_SHOWN).

    Only the numbers shown leave the stage file (a million-row plan stays in DuckDB):
    plan_report.plan_groups names them, and the groups' sizes come from the SQL.
    The address and a skip's reason share a column (a group has one or the other): every
    column then fits the UI's metadata panel without being cut."""
    heads = pd.DataFrame(run_query(PLAN_HEADS_SQL, [PLAN_NUMBERS_SHOWN], p=plan),
                         columns=[*HEAD_COLUMNS, "_key", "_why", "_total"])
    groups = plan_report.plan_groups(heads.drop(columns="_total"), addresses,
                                     PLAN_NUMBERS_SHOWN)
    totals = heads.assign(_key=heads["_key"].fillna(""), _why=heads["_why"].fillna("")).groupby(
        ["action", "_key", "_why"])["_total"].first()
    groups["numbers"] = [int(totals[(a, k or "", w or "")]) for a, k, w in zip(
        groups["action"], groups["target_address_id"].fillna(""), groups["reason"].fillna(""))]
    order = groups["action"].map({a: i for i, a in enumerate(
        (*plan_report.CHANGES, "skip", "noop"))})
    groups = groups.assign(_o=order, _m=-groups["numbers"]).sort_values(
        ["_o", "_m"], kind="stable").reset_index(drop=True)
    why = groups["reason"].where(groups["action"].eq("skip"))
    off = groups["action"].eq("disable")
    shown = groups.assign(
        target_or_reason=why.fillna(groups["target_address"].mask(off, "E911 off")),
        and_more=(groups["numbers"] - groups["first_numbers"].map(len)).where(
            groups["action"].ne("noop"), 0),
        # The E.164 number alone keeps the cell short; the full list has the ids.
        first_numbers=groups["first_numbers"].map(
            lambda names: [_ID_AFTER_NUMBER.sub("", n) for n in names]),
        target_address_id=groups["target_address_id"].astype(object))
    return (table(shown[list(PLAN_TABLE)], PLAN_GROUPS_SHOWN, descriptions=PLAN_TABLE,
                  kinds={"numbers": "int", "and_more": "int"}), len(groups))


# The first numbers of each group as plan_report.plan_groups groups them (action; target
# address for a change; reason for a skip), in its order (phone number), with the group's size.
HEAD_COLUMNS = ["action", "phone_number", "number_id", "target_enabled", "target_address_id",
                "address_given", "reason"]
PLAN_HEADS_SQL = (f"SELECT {', '.join(HEAD_COLUMNS)}, _key, _why, _total FROM ("
                  + plan_report.group_sql("p.plan") + ")")


# A batch sample's columns as the UI shows them: short names, so that none is cut off (the
# batch ids, long hashes, stay in emergency_jobs; outcomes name the job too).
BATCH_TABLE = {"job_id": "Telnyx's job id", "job_status": "the job's status at the end",
               "state": "the batch in the ledger", "numbers": "numbers in the batch",
               "enabled": "the target: E911 on or off", "address_id": "the target address",
               "actions": "what the batch does"}


def batches_table(batches: "pd.DataFrame | list[Any]") -> MetadataValue:
    """The run's batches (emergency_jobs rows), or a plan-only run's batches.Batch list."""
    if isinstance(batches, list):
        batches = pd.DataFrame(
            [{"numbers": len(b.identifiers), "emergency_enabled": b.emergency_enabled,
              "emergency_address_id": b.emergency_address_id,
              "actions": ", ".join(f"{a} {n}" for a, n in b.action_counts)} for b in batches],
            columns=["numbers", "emergency_enabled", "emergency_address_id", "actions"])
    shown = batches.rename(columns={"emergency_enabled": "enabled",
                                    "emergency_address_id": "address_id"})
    shown = shown[[c for c in BATCH_TABLE if c in shown]]
    return table(shown, descriptions=BATCH_TABLE, kinds={"enabled": "bool"})


def plan_full_list(full_list: Path | None, database: str, run_id: str) -> dict[str, Any]:
    """The plan's CSV (planning/full_list.py), or where it could not be written the SQL that
    gives the same rows."""
    if full_list is None:
        return {"full_list": MetadataValue.text(
            f"{database_path(database)}: {plan_report.plan_sql(run_id)}")}
    return {"full_list": MetadataValue.path(str(full_list))}


def plan_list_of_run(database: str, run_id: str) -> dict[str, Any]:
    """The plan's CSV, for the steps after the plan, when it was written."""
    path = plan_report.plan_csv_path(database, run_id)
    return {"plan_full_list": MetadataValue.path(str(path))} if path.exists() else {}
