"""Desired state: what the operators asked for, read from CSV / XLSX / a folder / DuckDB.

    ds = read_desired_state("data/desired.xlsx", sheet=None, default_region="US")
    ds.accepted    source_file, source_row, phone_number (E.164 or NA), number_id (or NA),
                   emergency_enabled (bool), emergency_address_id (or NA), extras (JSON text)
    ds.rejected    source_file, source_row, column, value, reason, fix, phone_number (E.164
                   where the cell parses, else the cell), extras (JSON text); one row per
                   problem, so a row with two problems appears twice
    ds.duplicates  identical copies collapsed into an accepted row (duplicate_of_file/_row)
    ds.files       per source: sheet (workbooks), rows, blank_rows, accepted, rejected_rows,
                   collapsed
    ds.sheets_read "file[sheet]" for every workbook sheet read (for logs and metadata)

Every non-blank input row is accepted, collapsed or rejected (`ds.check_accounting()`).
A source without data rows, without its phone or flag column, or whose rows are all rejected
raises DesiredStateError: such a sheet is never an instruction (require_rows=False lets the
last one through, for tests and tools that want the rejections themselves).
See phones.py for the rule that tells a Telnyx number id from a phone number.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from .errors import DesiredStateError
from .readers import RawTable, read_tables
from .validate import (ACCEPTED_COLUMNS, DUPLICATE_COLUMNS, REJECTED_COLUMNS, resolve_duplicates,
                       validate_table)

__all__ = ["DesiredState", "DesiredStateError", "read_desired_state", "desired_state_from_tables",
           "ACCEPTED_COLUMNS", "REJECTED_COLUMNS", "DUPLICATE_COLUMNS"]


@dataclass(frozen=True)
class DesiredState:
    accepted: pd.DataFrame
    rejected: pd.DataFrame
    duplicates: pd.DataFrame
    files: pd.DataFrame
    sheets_read: tuple[str, ...] = ()

    @property
    def input_rows(self) -> int:
        return int(self.files["rows"].sum())

    @property
    def rejected_rows(self) -> int:
        return int(len(self.rejected[["source_file", "source_row"]].drop_duplicates()))

    def counts(self) -> dict[str, int]:
        return {"input_rows": self.input_rows, "accepted": len(self.accepted),
                "rejected_rows": self.rejected_rows, "rejections": len(self.rejected),
                "collapsed_duplicates": len(self.duplicates),
                "blank_rows": int(self.files["blank_rows"].sum())}

    def check_accounting(self) -> None:
        c = self.counts()
        total = c["accepted"] + c["rejected_rows"] + c["collapsed_duplicates"]
        if total != c["input_rows"]:
            raise AssertionError(f"desired-state accounting broken: {c}")


def desired_state_from_tables(tables: list[RawTable], default_region: str = "US",
                              require_rows: bool = True) -> DesiredState:
    accepted_parts, rejected_parts, files = [], [], []
    for t in tables:
        acc, rej = validate_table(t, default_region)
        accepted_parts.append(acc)
        rejected_parts.append(rej)
        files.append({"source_file": t.source_file, "sheet": t.sheet, "rows": len(t.cells),
                      "blank_rows": t.blank_rows})
    accepted = pd.concat(accepted_parts, ignore_index=True)
    accepted, conflicts, duplicates = resolve_duplicates(accepted)
    rejected = pd.concat([*rejected_parts, conflicts], ignore_index=True)
    rejected = rejected.sort_values(["source_file", "source_row"], kind="stable",
                                    ignore_index=True)
    files_df = pd.DataFrame(files)
    per = lambda df: df.groupby("source_file").size()  # noqa: E731
    files_df["accepted"] = files_df["source_file"].map(per(accepted)).fillna(0).astype("int64")
    files_df["rejected_rows"] = files_df["source_file"].map(
        per(rejected.drop_duplicates(["source_file", "source_row"]))).fillna(0).astype("int64")
    files_df["collapsed"] = files_df["source_file"].map(per(duplicates)).fillna(0).astype("int64")
    # source_file names the sheet only when the run named it; sheets_read always does.
    sheets = tuple(t.source_file if t.source_file.endswith(f"[{t.sheet}]")
                   else f"{t.source_file}[{t.sheet}]" for t in tables if t.sheet)
    ds = DesiredState(accepted, rejected, duplicates, files_df, sheets)
    ds.check_accounting()
    if require_rows and accepted.empty:
        raise DesiredStateError(no_usable_row(ds))
    return ds


def no_usable_row(ds: DesiredState) -> str:
    """Why a sheet gave nothing to plan: the reasons by count, the first row of each."""
    sources = ", ".join(ds.files["source_file"])
    first = ds.rejected.drop_duplicates("reason").head(3)
    counts = ds.rejected["reason"].value_counts()
    shown = "; ".join(f"{counts[r.reason]} x {r.reason} (e.g. row {r.source_row}, column "
                      f"{r.column}; fix: {r.fix})" for r in first.itertuples())
    more = len(counts) - len(first)
    return (f"{sources}: no usable row, all {ds.rejected_rows} rejected: {shown}"
            + (f"; and {more} other reasons" if more > 0 else ""))


def read_desired_state(source: str | Path, sheet: str | None = None, default_region: str = "US",
                       table: str | None = None, query: str | None = None,
                       require_rows: bool = True) -> DesiredState:
    """Read and validate a desired state. Raises DesiredStateError if it cannot be read, has no
    data rows, lacks its phone or flag column, or (require_rows) every row is rejected; other
    bad rows never raise, they are rejected with a reason and a fix."""
    import phonenumbers

    if default_region.upper() not in phonenumbers.SUPPORTED_REGIONS:
        raise DesiredStateError(f"unknown default_region {default_region!r} (e.g. 'US', 'CA')")
    return desired_state_from_tables(read_tables(source, sheet=sheet, table=table, query=query),
                                     default_region.upper(), require_rows)
