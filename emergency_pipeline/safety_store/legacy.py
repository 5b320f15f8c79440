"""Bring a ledger of the old layout (`<database>.state/ledger.sqlite`, one per DuckDB file)
into the safety store, once, so that a run killed before the upgrade is still resumed.

Idempotent: each old file is imported once (table legacy_imports, by its absolute path) and
rows already in the store are kept. Old address events had no account: they take the one the
caller names (the account whose run reads them).
"""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

_BATCH_COLUMNS = ("run_id, batch_id, account, source, outcomes_db, emergency_enabled, "
                  "emergency_address_id, id_kind, identifiers, number_count, state, job_id, "
                  "job_status, detail, recorded_at, submitted_at, closed_at, published_at")
_RESULT_COLUMNS = ("run_id, batch_id, identifier, result, reason, job_id, job_status, "
                   "error_code, error_title, error_detail, error_pointer, finished_at")
_VERIFY_COLUMNS = ("account, number_id, phone_number, target_enabled, target_address_id, "
                   "run_id, recorded_at")


def import_legacy_ledger(backend: Any, path: str | Path, address_account: str) -> int | None:
    """Copy an old ledger file's rows into the store; the number of batches it held, or None
    when there is no such file or it was imported before."""
    path = Path(path).absolute()
    if not path.is_file():
        return None
    with backend.transaction(write=False) as con:
        if con.execute("SELECT 1 FROM legacy_imports WHERE path = ?",
                       (str(path),)).fetchone():
            return None
    with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as old:
        tables = {r[0] for r in old.execute("SELECT name FROM sqlite_master")}
        read = {name: old.execute(f"SELECT {cols} FROM {name}").fetchall() if name in tables
                else [] for name, cols in (("batches", _BATCH_COLUMNS),
                                           ("number_results", _RESULT_COLUMNS),
                                           ("to_verify", _VERIFY_COLUMNS))}
        events = (old.execute("SELECT * FROM batch_events").fetchall()
                  if "batch_events" in tables else [])
        addresses = (old.execute("SELECT address_key, run_id, event, address_id, fields, "
                                 "detail, at FROM address_events ORDER BY rowid").fetchall()
                     if "address_events" in tables else [])
    with backend.transaction() as con:
        if con.execute("SELECT 1 FROM legacy_imports WHERE path = ?" + backend.for_update,
                       (str(path),)).fetchone():
            return None  # another process imported it meanwhile
        for name, cols in (("batches", _BATCH_COLUMNS), ("number_results", _RESULT_COLUMNS),
                           ("to_verify", _VERIFY_COLUMNS)):
            if read[name]:
                marks = ",".join("?" * len(cols.split(",")))
                con.executemany(f"INSERT INTO {name} ({cols}) VALUES ({marks}) "
                                "ON CONFLICT DO NOTHING", read[name])
        if events:
            con.executemany("INSERT INTO batch_events VALUES (?,?,?,?,?,?,?,?)", events)
        if addresses:
            con.executemany("INSERT INTO address_events (account, address_key, run_id, event, "
                            "address_id, fields, detail, at) VALUES (?,?,?,?,?,?,?,?)",
                            [(address_account, *row) for row in addresses])
        con.execute("INSERT INTO legacy_imports (path, batches, at) VALUES (?, ?, "
                    f"{backend.now_sql})", (str(path), len(read["batches"])))
    return len(read["batches"])
