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

from emergency_pipeline.analytics.table_columns import COLUMNS
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


def batches_table(batches: pd.DataFrame) -> MetadataValue:
    """The run's batches (emergency_jobs rows), or a plan-only run's (steps/update_jobs.py)."""
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
