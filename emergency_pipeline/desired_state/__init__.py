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

write_desired_state (staging.py) does the same into DuckDB tables in memory bounded by a chunk of
rows, for sheets of millions of rows; read_desired_state is built on it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from .errors import DesiredStateError
from .staging import DesiredSummary, write_desired_state
from .validate import ACCEPTED_COLUMNS, DUPLICATE_COLUMNS, REJECTED_COLUMNS, typed

__all__ = ["DesiredState", "DesiredStateError", "DesiredSummary", "read_desired_state",
           "write_desired_state", "ACCEPTED_COLUMNS", "REJECTED_COLUMNS", "DUPLICATE_COLUMNS"]


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


def read_desired_state(source: str | Path, sheet: str | None = None, default_region: str = "US",
                       table: str | None = None, query: str | None = None,
                       require_rows: bool = True) -> DesiredState:
    """Read and validate a desired state into frames: write_desired_state into an in-memory
    DuckDB, read back. Raises DesiredStateError if it cannot be read, has no data rows, lacks
    its phone or flag column, or (require_rows) every row is rejected; other bad rows never
    raise, they are rejected with a reason and a fix."""
    from emergency_pipeline.duckdb_pool import borrowed

    with borrowed() as con:
        summary = write_desired_state(source, con, sheet=sheet, default_region=default_region,
                                      table=table, query=query, require_rows=require_rows)
        frame = lambda t: con.execute(f"SELECT * FROM {t}").df()  # noqa: E731
        ds = DesiredState(typed(frame("accepted"), ACCEPTED_COLUMNS),
                          typed(frame("rejected"), REJECTED_COLUMNS),
                          typed(frame("duplicates"), DUPLICATE_COLUMNS), frame("files"),
                          summary.sheets_read)
    ds.check_accounting()
    return ds
