"""Bring a ledger of the old layout (`<database>.state/ledger.sqlite`, one per DuckDB file)
into the safety store, once, so that a run killed before the upgrade is still resumed.

Idempotent: each old file is imported once (table legacy_imports, by its absolute path) and
rows already in the store are kept. Old rows were keyed by the base URL and a hash of the API
key (`legacy_account_key`): those of the caller's key take the caller's account identity, and
old address events, which had no account, take it too. An old relative outcomes file is the
one beside the old ledger (`<dir>/<name>.duckdb` for `<dir>/<name>.state/ledger.sqlite`).
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Collection
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


_LEGACY_DOMAIN = b"emergency_pipeline/account-lease\0"
_DEFAULT_PORTS = {"http": 80, "https": 443}


def legacy_account_key(base_url: str, api_key: str) -> str:
    """The key the old lease and ledger gave an account: `<url>#<16 hex of the API key>`."""
    from urllib.parse import urlsplit, urlunsplit

    digest = hashlib.sha256(_LEGACY_DOMAIN + api_key.strip().encode()).hexdigest()[:16]
    parts = urlsplit(base_url.strip())
    scheme, host, port = parts.scheme.lower(), parts.hostname or "", parts.port
    host = f"[{host}]" if ":" in host else host
    netloc = host if port in (None, _DEFAULT_PORTS.get(scheme)) else f"{host}:{port}"
    return f"{urlunsplit((scheme, netloc, parts.path.rstrip('/'), '', ''))}#{digest}"


def import_legacy_ledger(backend: Any, path: str | Path, address_account: str,
                         legacy_keys: Collection[str] = ()) -> int | None:
    """Copy an old ledger file's rows into the store; the number of batches it held, or None
    when there is no such file or it was imported before. Rows whose account is one of
    `legacy_keys` take `address_account` (the account's identity now)."""
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
    beside = path.parent.parent
    read["batches"] = [_renamed(row, 2, legacy_keys, address_account, beside)
                       for row in read["batches"]]
    read["to_verify"] = [_renamed(row, 0, legacy_keys, address_account, None)
                         for row in read["to_verify"]]
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


def _renamed(row: tuple, at: int, legacy_keys: Collection[str], account: str,
             beside: Path | None) -> tuple:
    out = list(row)
    if out[at] in legacy_keys:
        out[at] = account
    if beside is not None and out[4] and not Path(out[4]).is_absolute():
        out[4] = str(beside / Path(out[4]).name)   # batches: outcomes_db, column 4
    return tuple(out)
